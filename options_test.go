package cooper

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestOriginPatterns checks which patterns OriginPatterns refuses: those
// whose host part has no literal character other than "." and ":", each of
// which allows every site or almost; and that an accepted pattern lets in
// the origin it names and not a page on another site.
func TestOriginPatterns(t *testing.T) {
	refused := []string{
		"*", "**", "?*", "*?", "*.*", "*:*", "*.*:*", "*.", ".*", "[a-z]*", "[^.]*", "[a-z]*.[a-z]*",
		`[\]]*`, `\.*`, `\:*`, "*:443", "*:8443", `*\:8443`, "[a-z]*:*", "*://*", "https://*", "https://*.*",
		"HTTPS://**", "https://*:8443",
	}
	for _, p := range refused {
		t.Run(fmt.Sprintf("%q is refused", p), func(t *testing.T) {
			defer func() {
				v := recover()
				msg, _ := v.(string)
				if !strings.HasPrefix(msg, "cooper: OriginPatterns: ") || !strings.Contains(msg, "has no literal character in its host") {
					t.Errorf("OriginPatterns(%q) panicked with %v, want a panic saying the host has no literal character", p, v)
				}
			}()
			OriginPatterns(p)
		})
	}
	accepted := []struct{ pattern, allowed string }{
		{"example.com", "https://example.com"},
		{"*.example.com", "https://app.example.com"},
		{"localhost:*", "http://localhost:5173"},
		{"https://*.example.com", "https://app.example.com"},
		{"*://example.com", "http://example.com"},
		{"app-?.example.com", "https://app-2.example.com"},
		{"[ab].example.com", "https://a.example.com"},
		{`\*.example.com`, "https://*.example.com"},
		{"*.x", "https://a.x"},
		{`\[::1\]:*`, "http://[::1]:8080"},
		{"localhost:8443", "https://localhost:8443"},
	}
	for _, tc := range accepted {
		t.Run(fmt.Sprintf("%q is accepted", tc.pattern), func(t *testing.T) {
			c := newConfig([]Option{Protocols("websocket"), OriginPatterns(tc.pattern)})
			r := realRequest("")
			r.Header["Origin"] = []string{tc.allowed}
			if _, rej := validate(r, c); rej != nil {
				t.Errorf("Origin %q: %v, want it allowed", tc.allowed, rej)
			}
			r.Header["Origin"] = []string{"https://evil.example.org"}
			if _, rej := validate(r, c); !errors.Is(rej, ErrOrigin) {
				t.Errorf("Origin of another site: %v, want ErrOrigin", rej)
			}
		})
	}
	t.Run("a malformed pattern is refused", func(t *testing.T) {
		defer func() {
			if msg, _ := recover().(string); msg != `cooper: OriginPatterns: "[a-" is not a valid pattern` {
				t.Errorf("panic %q, want the pattern named as not valid", msg)
			}
		}()
		OriginPatterns("[a-")
	})
}

// TestOriginLength checks the bound on Origin: one of 512 bytes is looked
// at, one byte more is refused with 403 before it is.
func TestOriginLength(t *testing.T) {
	c := newConfig([]Option{Protocols("websocket"), OriginPatterns("*.example.com")})
	r := realRequest("")
	long := "https://" + strings.Repeat("a", maxOrigin-len("https://.example.com")) + ".example.com"
	r.Header["Origin"] = []string{long}
	if _, rej := validate(r, c); rej != nil || len(long) != 512 {
		t.Errorf("an allowed Origin of %d bytes: %v, want it allowed", len(long), rej)
	}
	r.Header["Origin"] = []string{"https://a" + long[len("https://"):]}
	_, rej := validate(r, c)
	if rej == nil || rej.Status != 403 || !errors.Is(rej, ErrOrigin) || rej.Error() != "cooper: Origin: 513 bytes, longer than any origin (512)" {
		t.Errorf("an Origin of 513 bytes: %v, want a 403 refusal matching ErrOrigin that gives its length", rej)
	}
}
