package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/forward"
	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/upstream"
)

// externalISBN is the ISBN of an edition of The Comedy of Errors whose only
// author is Shakespeare; the external book service is asked about it.
const externalISBN = "0486424618"

// externalTimeout bounds the call to the external book service.
const externalTimeout = 5 * time.Second

// config is what the handler needs from the environment.
type config struct {
	// external makes /details ask the external book service.
	external bool
	// booksEndpoint is the volumes search URL of the external book service.
	booksEndpoint string
	// client makes the external call (through the sidecar).
	client *http.Client
}

func googleBooksURL(plainHTTP bool) string {
	if plainHTTP {
		return "http://www.googleapis.com:80/books/v1/volumes"
	}
	return "https://www.googleapis.com/books/v1/volumes"
}

// book is the details document. Field order is the order Istio's service
// writes them in.
type book struct {
	ID        int    `json:"id"`
	Author    string `json:"author"`
	Year      any    `json:"year"`
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

func localBook(id int) book {
	return book{
		ID:        id,
		Author:    "William Shakespeare",
		Year:      1595,
		Type:      "paperback",
		Pages:     200,
		Publisher: "PublisherA",
		Language:  "English",
		ISBN10:    "1234567890",
		ISBN13:    "123-1234567890",
	}
}

func newHandler(cfg config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "Details is healthy"})
	})
	mux.HandleFunc("/details/", func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(strings.TrimSuffix(r.URL.Path, "/"), "/")
		id, err := strconv.Atoi(parts[len(parts)-1])
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
			return
		}
		if !cfg.external {
			writeJSON(w, http.StatusOK, localBook(id))
			return
		}
		b, err := fetchExternal(r.Context(), cfg, id, forward.Headers(r.Header))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, b)
	})
	return mux
}

// volumes is the part of the Google Books volumes answer that is used.
type volumes struct {
	Items []struct {
		VolumeInfo struct {
			Authors             []string `json:"authors"`
			PublishedDate       string   `json:"publishedDate"`
			PrintType           string   `json:"printType"`
			PageCount           int      `json:"pageCount"`
			Publisher           string   `json:"publisher"`
			Language            string   `json:"language"`
			IndustryIdentifiers []struct {
				Type       string `json:"type"`
				Identifier string `json:"identifier"`
			} `json:"industryIdentifiers"`
		} `json:"volumeInfo"`
	} `json:"items"`
}

type errString string

func (e errString) Error() string { return string(e) }

func fetchExternal(ctx context.Context, cfg config, id int, h http.Header) (book, error) {
	u := cfg.booksEndpoint + "?q=" + url.QueryEscape("isbn:"+externalISBN)
	var v volumes
	res := upstream.GetJSON(ctx, cfg.client, u, h, externalTimeout, &v)
	switch {
	case res.Err != nil:
		return book{}, res.Err
	case res.Status != http.StatusOK:
		return book{}, errString("external book service answered " + strconv.Itoa(res.Status))
	case len(v.Items) == 0:
		return book{}, errString("external book service knows no book with isbn " + externalISBN)
	}
	info := v.Items[0].VolumeInfo
	b := book{
		ID:        id,
		Year:      info.PublishedDate,
		Type:      "unknown",
		Pages:     info.PageCount,
		Publisher: info.Publisher,
		Language:  "unknown",
	}
	if len(info.Authors) > 0 {
		b.Author = info.Authors[0]
	}
	if info.PrintType == "BOOK" {
		b.Type = "paperback"
	}
	if info.Language == "en" {
		b.Language = "English"
	}
	for _, ident := range info.IndustryIdentifiers {
		switch ident.Type {
		case "ISBN_10":
			b.ISBN10 = ident.Identifier
		case "ISBN_13":
			b.ISBN13 = ident.Identifier
		}
	}
	return b, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
