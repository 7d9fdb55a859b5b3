package cooper

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestScanList(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		valid func(string) bool
		want  []string // nil when the list is malformed
	}{
		{"one token", []string{"websocket"}, isToken, []string{"websocket"}},
		{"white space around elements is trimmed", []string{" \ta ,\tb "}, isToken, []string{"a", "b"}},
		{"empty elements are ignored", []string{",, a ,, ,b,"}, isToken, []string{"a", "b"}},
		{"every line counts, in order", []string{"a, b", "", "c"}, isToken, []string{"a", "b", "c"}},
		{"a space inside an element is malformed", []string{"a b"}, isToken, nil},
		{"a malformed element after valid ones is malformed", []string{"a, b", "c d"}, isToken, nil},
		{"a non-ASCII byte is malformed", []string{"websoc\u212Aet"}, isToken, nil},
		{"a protocol may have a version", []string{"HTTP/2.0, chat/1"}, isProtocol, []string{"HTTP/2.0", "chat/1"}},
		{"a protocol has one slash at most", []string{"a/b/c"}, isProtocol, nil},
		{"a protocol version is not empty", []string{"a/"}, isProtocol, nil},
		{"a comma in a quoted string does not split", []string{`x; p="a,b", y`}, func(string) bool { return true }, []string{`x; p="a,b"`, "y"}},
		{"an escaped quote does not end a quoted string", []string{`x; p="a\",b", y`}, func(string) bool { return true }, []string{`x; p="a\",b"`, "y"}},
		{"an unterminated quoted string is malformed", []string{`x; p="a, y`}, func(string) bool { return true }, nil},
		{"a control byte in a quoted string is malformed", []string{"x; p=\"a\x01\""}, func(string) bool { return true }, nil},
		{"no lines is an empty list", nil, isToken, []string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := []string{}
			ok := scanList(tc.lines, tc.valid, func(e string) bool { got = append(got, e); return true })
			if !ok {
				got = nil
			}
			if !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
				t.Errorf("scanList(%q) = %q, want %q", tc.lines, got, tc.want)
			}
		})
	}
}

func TestHasToken(t *testing.T) {
	cases := []struct {
		name      string
		lines     []string
		found, ok bool
	}{
		{"the token alone", []string{"Upgrade"}, true, true},
		{"the token in another case, later in the list", []string{"keep-alive, UPGRADE"}, true, true},
		{"the token on a later line", []string{"keep-alive", "upgrade"}, true, true},
		{"a token that only starts with it", []string{"upgradex"}, false, true},
		{"a token that only contains it", []string{"x-upgrade"}, false, true},
		{"no lines", nil, false, true},
		{"the token beside a malformed element", []string{"upgrade, a b"}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			found, ok := hasToken(tc.lines, "upgrade")
			if found != tc.found || ok != tc.ok {
				t.Errorf("hasToken(%q) = %v, %v, want %v, %v", tc.lines, found, ok, tc.found, tc.ok)
			}
		})
	}
}

func TestNegotiateSubprotocol(t *testing.T) {
	cases := []struct {
		name   string
		lines  []string
		accept []string
		want   string
		ok     bool
	}{
		{"the client's order wins over the server's", []string{"b, a"}, []string{"a", "b"}, "b", true},
		{"a later line counts", []string{"x", "a"}, []string{"a"}, "a", true},
		{"comparison is byte for byte", []string{"A"}, []string{"a"}, "", true},
		{"nothing in common is no subprotocol", []string{"x, y"}, []string{"a"}, "", true},
		{"no server subprotocols is no subprotocol", []string{"a"}, nil, "", true},
		{"no offer is no subprotocol", nil, []string{"a"}, "", true},
		{"a malformed list is refused even after a match", []string{"a, b c"}, []string{"a"}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := negotiateSubprotocol(http.Header{hdrWSProtocol: tc.lines}, tc.accept)
			if got != tc.want || ok != tc.ok {
				t.Errorf("negotiateSubprotocol(%q, %q) = %q, %v, want %q, %v", tc.lines, tc.accept, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// Reference grammars for the fuzz targets: RFC 9110's list and token rules
// written as regular expressions, slow and obviously right.
var (
	refToken        = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+"
	refProtocol     = refToken + "(?:/" + refToken + ")?"
	refTokenList    = regexp.MustCompile(`^[ \t]*(?:` + refToken + `)?(?:[ \t]*,[ \t]*(?:` + refToken + `)?)*[ \t]*$`)
	refProtocolList = regexp.MustCompile(`^[ \t]*(?:` + refProtocol + `)?(?:[ \t]*,[ \t]*(?:` + refProtocol + `)?)*[ \t]*$`)
	refProtocolElem = regexp.MustCompile(refProtocol)
	refTokenElem    = regexp.MustCompile(refToken)
)

// FuzzTokenList checks the list parser against the reference grammars, and
// that a chosen protocol or token is one the client offered.
func FuzzTokenList(f *testing.F) {
	for _, s := range []string{
		"websocket", "Upgrade", "keep-alive, Upgrade", "h2c, websocket", "HTTP/2.0, SHTTP/1.3, IRC/6.9, RTA/x11",
		" , ,upgrade ,", "a b", "websoc\u212Aet", `x; p="a,b"`, "a/b/c", "chat, superchat", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var tokens, protocols []string
		tokOK := scanList([]string{s}, isToken, func(e string) bool { tokens = append(tokens, e); return true })
		protoOK := scanList([]string{s}, isProtocol, func(e string) bool { protocols = append(protocols, e); return true })
		if want := refTokenList.MatchString(s); tokOK != want {
			t.Fatalf("token list %q: ok = %v, reference says %v", s, tokOK, want)
		}
		if want := refProtocolList.MatchString(s); protoOK != want {
			t.Fatalf("protocol list %q: ok = %v, reference says %v", s, protoOK, want)
		}
		if tokOK {
			if want := refTokenElem.FindAllString(s, -1); !slices.Equal(tokens, want) {
				t.Fatalf("token list %q = %q, reference says %q", s, tokens, want)
			}
			found, _ := hasToken([]string{s}, "upgrade")
			if want := slices.ContainsFunc(tokens, func(e string) bool { return strings.EqualFold(e, "upgrade") }); found != want {
				t.Fatalf("hasToken(%q) = %v, reference says %v", s, found, want)
			}
		}
		if protoOK {
			if want := refProtocolElem.FindAllString(s, -1); !slices.Equal(protocols, want) {
				t.Fatalf("protocol list %q = %q, reference says %q", s, protocols, want)
			}
		}
		h := http.Header{hdrUpgrade: {s}}
		proto, ok := negotiateProtocol(h, nil)
		if ok != protoOK || ok && len(protocols) > 0 && proto != strings.ToLower(protocols[0]) {
			t.Fatalf("negotiateProtocol(%q, any) = %q, %v, want the first offer in lower case", s, proto, ok)
		}
		proto, ok = negotiateProtocol(h, []string{"websocket", "Chat/2"})
		if ok && proto != "" && !slices.ContainsFunc(protocols, func(e string) bool { return strings.EqualFold(e, proto) }) {
			t.Fatalf("negotiateProtocol(%q) = %q, which the client did not offer", s, proto)
		}
	})
}
