package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/upstream"
)

func TestDetails(t *testing.T) {
	h := newHandler(config{})
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantBody   string
	}{
		{name: "health", path: "/health", wantStatus: 200, wantBody: `{"status":"Details is healthy"}`},
		{name: "book 0", path: "/details/0", wantStatus: 200,
			wantBody: `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`},
		{name: "other id echoed", path: "/details/42", wantStatus: 200,
			wantBody: `{"id":42,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`},
		{name: "non-numeric id", path: "/details/abc", wantStatus: 400, wantBody: `{"error":"please provide numeric product id"}`},
		{name: "unknown path", path: "/nope", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantBody != "" {
				if got := strings.TrimSpace(rec.Body.String()); got != tt.wantBody {
					t.Errorf("body = %s\nwant   %s", got, tt.wantBody)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type = %q", ct)
				}
			}
		})
	}
}

func TestDetailsExternal(t *testing.T) {
	var gotQuery, gotRID, gotUser string
	books := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.Query().Get("q")
		gotRID = r.Header.Get("x-request-id")
		gotUser = r.Header.Get("end-user")
		_, _ = io.WriteString(w, `{"items":[{"volumeInfo":{"authors":["William Shakespeare"],"publishedDate":"2002",
			"printType":"BOOK","pageCount":80,"publisher":"Dover Publications","language":"en",
			"industryIdentifiers":[{"type":"ISBN_10","identifier":"0486424618"},{"type":"ISBN_13","identifier":"9780486424613"}]}}]}`)
	}))
	defer books.Close()
	h := newHandler(config{external: true, booksEndpoint: books.URL + "/books/v1/volumes", client: upstream.NewClient(noProxy)})
	req := httptest.NewRequest(http.MethodGet, "/details/0", nil)
	req.Header.Set("x-request-id", "rid-ext")
	req.Header.Set("end-user", "jason")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("status = %d body %s", rec.Code, rec.Body)
	}
	var b map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if b["year"] != "2002" || b["publisher"] != "Dover Publications" || b["ISBN-13"] != "9780486424613" || b["language"] != "English" || b["type"] != "paperback" {
		t.Errorf("book = %v", b)
	}
	if gotQuery != "isbn:0486424618" || gotRID != "rid-ext" || gotUser != "jason" {
		t.Errorf("external call q=%q rid=%q user=%q", gotQuery, gotRID, gotUser)
	}
}

func TestDetailsExternalUnavailable(t *testing.T) {
	books := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "denied", http.StatusBadGateway)
	}))
	defer books.Close()
	h := newHandler(config{external: true, booksEndpoint: books.URL, client: upstream.NewClient(noProxy)})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/details/0", nil))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), "502") {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
}

func TestGoogleBooksURL(t *testing.T) {
	if got := googleBooksURL(false); got != "https://www.googleapis.com/books/v1/volumes" {
		t.Errorf("tls url = %s", got)
	}
	if got := googleBooksURL(true); got != "http://www.googleapis.com:80/books/v1/volumes" {
		t.Errorf("plain url = %s", got)
	}
}
