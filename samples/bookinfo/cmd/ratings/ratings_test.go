package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRatings(t *testing.T) {
	h := newHandler(newStore())
	steps := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{name: "health", method: "GET", path: "/health", wantStatus: 200, wantBody: `{"status":"Ratings is healthy"}`},
		{name: "default ratings", method: "GET", path: "/ratings/0", wantStatus: 200, wantBody: `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{name: "non-numeric id", method: "GET", path: "/ratings/x", wantStatus: 400, wantBody: `{"error":"please provide numeric product ID"}`},
		{name: "post bad json", method: "POST", path: "/ratings/1", body: `{`, wantStatus: 400, wantBody: `{"error":"please provide valid ratings JSON"}`},
		{name: "post ratings", method: "POST", path: "/ratings/1", body: `{"Reviewer1":1,"Reviewer2":2}`, wantStatus: 200, wantBody: `{"id":1,"ratings":{"Reviewer1":1,"Reviewer2":2}}`},
		{name: "posted ratings kept", method: "GET", path: "/ratings/1", wantStatus: 200, wantBody: `{"id":1,"ratings":{"Reviewer1":1,"Reviewer2":2}}`},
		{name: "other product unchanged", method: "GET", path: "/ratings/0", wantStatus: 200, wantBody: `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`},
		{name: "wrong method", method: "DELETE", path: "/ratings/0", wantStatus: 405},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(st.method, st.path, strings.NewReader(st.body)))
			if rec.Code != st.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, st.wantStatus, rec.Body)
			}
			if st.wantBody != "" && strings.TrimSpace(rec.Body.String()) != st.wantBody {
				t.Errorf("body = %s, want %s", rec.Body, st.wantBody)
			}
		})
	}
}
