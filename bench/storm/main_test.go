package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestUpgradeSortsAnswers: a 503 is a refusal to retry after its
// Retry-After; any other answer but a valid 101 is errAnswer, which
// counts as neither a refusal nor a failed connection.
func TestUpgradeSortsAnswers(t *testing.T) {
	clientTimeout = 5 * time.Second
	for _, tt := range []struct {
		name       string
		status     int
		retryAfter string
		wantErr    error
		wantWait   int
	}{
		{"a 503 with Retry-After is a refusal", http.StatusServiceUnavailable, "3", errRefused, 3},
		{"a 503 without Retry-After is a refusal waited a second", http.StatusServiceUnavailable, "", errRefused, 1},
		{"a 429 is not a 503", http.StatusTooManyRequests, "3", errAnswer, 0},
		{"a 426 is not a 503", http.StatusUpgradeRequired, "", errAnswer, 0},
		{"a 101 with a wrong accept", http.StatusSwitchingProtocols, "", errAnswer, 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.retryAfter != "" {
				w.Header().Set("Retry-After", tt.retryAfter)
			}
			if tt.status == http.StatusSwitchingProtocols {
				w.Header().Set("Upgrade", "websocket")
				w.Header().Set("Connection", "Upgrade")
				w.Header().Set("Sec-WebSocket-Accept", "wrong")
			}
			w.WriteHeader(tt.status)
		}))
		conn, wait, err := upgrade(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
		srv.Close()
		if conn != nil || !errors.Is(err, tt.wantErr) || wait != tt.wantWait {
			t.Errorf("%s: upgrade = %v, %d, %v; want no connection, %d, %v", tt.name, conn, wait, err, tt.wantWait, tt.wantErr)
		}
	}
}
