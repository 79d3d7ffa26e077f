package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// productRatings is the answer for one product.
type productRatings struct {
	ID      int            `json:"id"`
	Ratings map[string]int `json:"ratings"`
}

// store holds ratings posted at run time; products without posted ratings
// get the default ones.
type store struct {
	mu    sync.Mutex
	added map[int]map[string]int
}

func newStore() *store { return &store{added: map[int]map[string]int{}} }

func (s *store) get(id int) productRatings {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.added[id]; ok {
		return productRatings{ID: id, Ratings: copyRatings(r)}
	}
	return productRatings{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}}
}

func (s *store) put(id int, r map[string]int) productRatings {
	s.mu.Lock()
	s.added[id] = copyRatings(r)
	s.mu.Unlock()
	return s.get(id)
}

func copyRatings(r map[string]int) map[string]int {
	out := make(map[string]int, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

func newHandler(s *store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "Ratings is healthy"})
	})
	mux.HandleFunc("GET /ratings/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, s.get(id))
	})
	mux.HandleFunc("POST /ratings/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(w, r)
		if !ok {
			return
		}
		var in map[string]int
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil || json.Unmarshal(body, &in) != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide valid ratings JSON"})
			return
		}
		writeJSON(w, http.StatusOK, s.put(id, in))
	})
	return mux
}

func productID(w http.ResponseWriter, r *http.Request) (int, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product ID"})
		return 0, false
	}
	return id, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
