package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/forward"
	"github.com/bowline-mesh/bowline/samples/bookinfo/internal/upstream"
)

// Ratings call timeouts. Like Istio's reviews, the black-star version (v2)
// waits much longer than the red-star one (v3): with a 7 s delay injected on
// ratings, v2 outlasts productpage's own timeout while v3 gives up first and
// shows the ratings error.
const (
	ratingsTimeoutBlack = 10 * time.Second
	ratingsTimeoutOther = 2500 * time.Millisecond
)

// ratingsUnavailable is shown in place of stars when ratings did not answer.
const ratingsUnavailable = "Ratings service is currently unavailable"

// config is what the handler needs from the environment.
type config struct {
	// ratingsEnabled makes the service call ratings and include stars.
	ratingsEnabled bool
	// starColor is the colour of the stars, reported to productpage.
	starColor string
	// ratingsURL is the ratings endpoint without the product id.
	ratingsURL string
	// ratingsTimeout bounds the ratings call.
	ratingsTimeout time.Duration
	// podName names this instance in answers ("podname").
	podName string
	// clusterName is the cluster this instance runs in; empty for none.
	clusterName string
	// client calls ratings (through the sidecar).
	client *http.Client
}

// configFromEnv reads the configuration the way Istio's reviews does.
func configFromEnv(getenv func(string) string, hostname func() (string, error)) config {
	c := config{
		ratingsEnabled: strings.EqualFold(getenv("ENABLE_RATINGS"), "true"),
		starColor:      getenv("STAR_COLOR"),
		ratingsURL:     upstream.BaseURL(getenv, "ratings", getenv("RATINGS_SERVICE_PORT")) + "/ratings",
		podName:        getenv("BOWLINE_WORKLOAD"),
		clusterName:    getenv("CLUSTER_NAME"),
	}
	if c.starColor == "" {
		c.starColor = "black"
	}
	c.ratingsTimeout = ratingsTimeoutOther
	if c.starColor == "black" {
		c.ratingsTimeout = ratingsTimeoutBlack
	}
	if c.podName == "" {
		c.podName = getenv("HOSTNAME")
	}
	if c.podName == "" {
		c.podName, _ = hostname()
	}
	return c
}

// reviewsAnswer is the /reviews/<id> document.
type reviewsAnswer struct {
	ID          string   `json:"id"`
	PodName     string   `json:"podname"`
	ClusterName *string  `json:"clustername"`
	Reviews     []review `json:"reviews"`
}

type review struct {
	Reviewer string  `json:"reviewer"`
	Text     string  `json:"text"`
	Rating   *rating `json:"rating,omitempty"`
}

type rating struct {
	Stars *int   `json:"stars,omitempty"`
	Color string `json:"color,omitempty"`
	Error string `json:"error,omitempty"`
}

// The two reviews every product gets.
var reviewTexts = [...]struct{ reviewer, text string }{
	{"Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
	{"Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
}

func newHandler(cfg config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "Reviews is healthy"})
	})
	mux.HandleFunc("GET /reviews/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
			return
		}
		writeJSON(w, http.StatusOK, answer(r, cfg, id))
	})
	return mux
}

func answer(r *http.Request, cfg config, id int) reviewsAnswer {
	a := reviewsAnswer{ID: strconv.Itoa(id), PodName: cfg.podName}
	if cfg.clusterName != "" {
		a.ClusterName = &cfg.clusterName
	}
	var stars map[string]int
	if cfg.ratingsEnabled {
		var got struct {
			Ratings map[string]int `json:"ratings"`
		}
		res := upstream.GetJSON(r.Context(), cfg.client, cfg.ratingsURL+"/"+strconv.Itoa(id),
			forward.Headers(r.Header), cfg.ratingsTimeout, &got)
		if res.OK() {
			stars = got.Ratings
		}
	}
	for _, t := range reviewTexts {
		rv := review{Reviewer: t.reviewer, Text: t.text}
		if cfg.ratingsEnabled {
			if n, ok := stars[t.reviewer]; ok {
				rv.Rating = &rating{Stars: &n, Color: cfg.starColor}
			} else {
				rv.Rating = &rating{Error: ratingsUnavailable}
			}
		}
		a.Reviews = append(a.Reviews, rv)
	}
	return a
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
