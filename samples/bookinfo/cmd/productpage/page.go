package main

import (
	"bytes"
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
)

// The product page marks every star with a stable class so that tests and
// scripts can tell the reviews versions apart: each filled star is an element
// with class="stars-<color>" (stars-black for reviews v2, stars-red for v3),
// each unfilled star has class="stars-empty", and reviews v1 renders no star
// elements at all. The instance that answered is printed as
// "Reviews served by: <podname>".
const pageTemplate = `{{define "productpage"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Simple Bookstore App</title>
<link rel="stylesheet" href="static/bookinfo.css">
</head>
<body>
<nav class="bar">
  <span class="brand">BookInfo Sample</span>
  {{if .User}}<span class="user" id="user" data-user="{{.User}}">{{.User}}</span> <a href="logout" id="logout">Sign out</a>
  {{else}}<form method="post" action="login" name="login_form" class="login">
    <input id="username" name="username" placeholder="Username" required>
    <input id="password" name="passwd" type="password" placeholder="Password">
    <button type="submit" id="sign-in-button">Sign in</button>
  </form>{{end}}
</nav>
<main>
<section id="product">
  <h1>{{.Product.Title}}</h1>
  <p class="description">{{.Product.DescriptionHTML}}</p>
</section>
<section id="details">
{{- if .DetailsOK}}
  <h4>Book Details</h4>
  <dl>
    <dt>Type:</dt><dd id="details-type">{{.Details.Type}}</dd>
    <dt>Pages:</dt><dd id="details-pages">{{.Details.Pages}}</dd>
    <dt>Publisher:</dt><dd id="details-publisher">{{.Details.Publisher}}</dd>
    <dt>Language:</dt><dd id="details-language">{{.Details.Language}}</dd>
    <dt>ISBN-10:</dt><dd id="details-isbn10">{{.Details.ISBN10}}</dd>
    <dt>ISBN-13:</dt><dd id="details-isbn13">{{.Details.ISBN13}}</dd>
  </dl>
{{- else}}
  <h4 class="error">Error fetching product details</h4>
  <p class="error-text" id="details-error">{{.DetailsError}}</p>
{{- end}}
</section>
<section id="reviews">
{{- if .ReviewsOK}}
  <h4>Book Reviews</h4>
  {{- range .Reviews}}
  <blockquote class="review" data-reviewer="{{.Reviewer}}">
    <p>{{.Text}}</p>
    <small>{{.Reviewer}}</small>
    {{- if .HasStars}}
    <div class="rating" data-stars="{{.Stars}}" data-color="{{.Color}}">
      {{- $class := printf "stars-%s" ($.StarColor .Color)}}
      {{- range .Full}}<span class="{{$class}}">&#9733;</span>{{end -}}
      {{- range .Empty}}<span class="stars-empty">&#9734;</span>{{end -}}
    </div>
    {{- else if .RatingError}}
    <p class="rating-error">{{.RatingError}}</p>
    {{- end}}
    <p class="served-by">Reviews served by: {{$.PodName}}{{if $.ClusterName}} on cluster {{$.ClusterName}}{{end}}</p>
  </blockquote>
  {{- end}}
{{- else}}
  <h4 class="error">Error fetching product reviews</h4>
  <p class="error-text" id="reviews-error">{{.ReviewsError}}</p>
{{- end}}
</section>
</main>
</body>
</html>
{{end}}
{{define "index"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Simple Bookstore App</title>
<link rel="stylesheet" href="static/bookinfo.css">
</head>
<body>
<main>
<h1>Hello! This is a simple bookstore application consisting of three services as shown below</h1>
<table class="services">
  <tr><th>name</th><th>endpoint</th><th>calls</th></tr>
  {{- range .}}
  <tr><td>{{.Name}}</td><td>{{.Endpoint}}</td><td>{{.Calls}}</td></tr>
  {{- end}}
</table>
<p>Click on one of the links below to see how to access the product page as different users.</p>
<p><a href="productpage?u=normal" id="normal-user">Normal user</a></p>
<p><a href="productpage?u=test" id="test-user">Test user</a></p>
</main>
</body>
</html>
{{end}}`

func parsePages() *template.Template {
	return template.Must(template.New("pages").Parse(pageTemplate))
}

// bookDetails is the part of the details answer the page shows.
type bookDetails struct {
	Type      string `json:"type"`
	Pages     int    `json:"pages"`
	Publisher string `json:"publisher"`
	Language  string `json:"language"`
	ISBN10    string `json:"ISBN-10"`
	ISBN13    string `json:"ISBN-13"`
}

// reviewsDoc is the reviews answer.
type reviewsDoc struct {
	PodName     string  `json:"podname"`
	ClusterName *string `json:"clustername"`
	Reviews     []struct {
		Reviewer string `json:"reviewer"`
		Text     string `json:"text"`
		Rating   *struct {
			Stars *int   `json:"stars"`
			Color string `json:"color"`
			Error string `json:"error"`
		} `json:"rating"`
	} `json:"reviews"`
}

// reviewView is one review as rendered.
type reviewView struct {
	Reviewer, Text string
	HasStars       bool
	Stars          int
	Color          string
	// Full and Empty are the numbers of filled and unfilled stars (of five).
	Full, Empty int
	RatingError string
}

// pageView is everything the product page shows.
type pageView struct {
	User         string
	Product      product
	DetailsOK    bool
	Details      bookDetails
	DetailsError string
	ReviewsOK    bool
	Reviews      []reviewView
	ReviewsError string
	PodName      string
	ClusterName  string
}

// StarColor turns a colour reported by reviews into a class-name suffix:
// lowercase letters only, anything else becomes "unknown".
func (pageView) StarColor(c string) string {
	c = strings.ToLower(c)
	if c == "" {
		return "unknown"
	}
	for _, r := range c {
		if r < 'a' || r > 'z' {
			return "unknown"
		}
	}
	return c
}

func errorText(body json.RawMessage, fallback string) string {
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return fallback
}

func (h *handler) productPage(w http.ResponseWriter, r *http.Request) {
	const id = "0"
	hdr := outboundHeaders(r)
	v := pageView{User: user(r), Product: products()[0]}

	det := h.details(r.Context(), id, hdr)
	v.DetailsOK = det.ok() && json.Unmarshal(det.body, &v.Details) == nil
	if !v.DetailsOK {
		v.DetailsError = errorText(det.body, detailsUnavailable)
	}

	rev := h.reviews(r.Context(), id, hdr)
	var doc reviewsDoc
	v.ReviewsOK = rev.ok() && json.Unmarshal(rev.body, &doc) == nil
	if v.ReviewsOK {
		v.PodName = doc.PodName
		if doc.ClusterName != nil && *doc.ClusterName != "null" {
			v.ClusterName = *doc.ClusterName
		}
		for _, rv := range doc.Reviews {
			view := reviewView{Reviewer: rv.Reviewer, Text: rv.Text}
			if rt := rv.Rating; rt != nil {
				switch {
				case rt.Stars != nil:
					view.HasStars = true
					view.Stars = min(max(*rt.Stars, 0), 5)
					view.Color = rt.Color
					view.Full, view.Empty = view.Stars, 5-view.Stars
				case rt.Error != "":
					view.RatingError = rt.Error
				}
			}
			v.Reviews = append(v.Reviews, view)
		}
	} else {
		v.ReviewsError = errorText(rev.body, reviewsUnavailable)
	}

	h.render(w, "productpage", v)
}

// render executes a page into memory first, so that a template error is a
// clean 500 rather than half a page.
func (h *handler) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := h.pages.ExecuteTemplate(&buf, name, data); err != nil {
		http.Error(w, "render "+name+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// serviceRow is one line of the index page's service table.
type serviceRow struct{ Name, Endpoint, Calls string }

func (h *handler) index(w http.ResponseWriter, r *http.Request) {
	rows := []serviceRow{
		{Name: "productpage", Endpoint: "/productpage", Calls: h.cfg.detailsURL + ", " + h.cfg.reviewsURL},
		{Name: "details", Endpoint: h.cfg.detailsURL + "/details", Calls: ""},
		{Name: "reviews", Endpoint: h.cfg.reviewsURL + "/reviews", Calls: h.cfg.ratingsURL},
		{Name: "ratings", Endpoint: h.cfg.ratingsURL + "/ratings", Calls: ""},
	}
	h.render(w, "index", rows)
}
