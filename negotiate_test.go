package cooper

import (
	"net/http"
	"regexp"
	"slices"
	"strconv"
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
// that a chosen protocol or subprotocol is one the client offered: for a
// subprotocol, the client's first that the server accepts, byte for byte.
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
		proto, ok := negotiateProtocol([]string{s}, nil)
		if ok != protoOK || ok && len(protocols) > 0 && proto != strings.ToLower(protocols[0]) {
			t.Fatalf("negotiateProtocol(%q, any) = %q, %v, want the first offer in lower case", s, proto, ok)
		}
		proto, ok = negotiateProtocol([]string{s}, []string{"websocket", "Chat/2"})
		if ok && proto != "" && !slices.ContainsFunc(protocols, func(e string) bool { return strings.EqualFold(e, proto) }) {
			t.Fatalf("negotiateProtocol(%q) = %q, which the client did not offer", s, proto)
		}
		accept := []string{"chat", "v2.chat", "Upgrade"}
		sub, ok := negotiateSubprotocol(http.Header{hdrWSProtocol: {s}}, accept)
		if ok != tokOK {
			t.Fatalf("negotiateSubprotocol(%q): ok = %v, the token-list reference says %v", s, ok, tokOK)
		}
		if sub != "" {
			first := slices.IndexFunc(tokens, func(e string) bool { return slices.Contains(accept, e) })
			if first < 0 || tokens[first] != sub {
				t.Fatalf("negotiateSubprotocol(%q) = %q, want the client's first offer the server accepts, byte for byte", s, sub)
			}
		}
	})
}

func TestNegotiateDeflate(t *testing.T) {
	type p = DeflateParams
	const pmd = "permessage-deflate"
	cases := []struct {
		name   string
		lines  []string
		policy DeflateParams
		answer string // "" when no offer is agreed
		agreed DeflateParams
	}{
		{"Firefox's offer is accepted as it is",
			[]string{pmd}, p{}, pmd, p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"Chromium's and Node ws's offer gets client_max_window_bits answered",
			[]string{pmd + "; client_max_window_bits"}, p{}, pmd + "; client_max_window_bits=15", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"policy ServerNoContextTakeover is always answered",
			[]string{pmd}, p{ServerNoContextTakeover: true}, pmd + "; server_no_context_takeover",
			p{ServerNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"server_no_context_takeover asked by the client binds the server",
			[]string{pmd + "; server_no_context_takeover"}, p{}, pmd + "; server_no_context_takeover",
			p{ServerNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"policy ClientNoContextTakeover is always answered",
			[]string{pmd}, p{ClientNoContextTakeover: true}, pmd + "; client_no_context_takeover",
			p{ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"client_no_context_takeover offered by the client is answered",
			[]string{pmd + "; client_no_context_takeover"}, p{}, pmd + "; client_no_context_takeover",
			p{ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"server_max_window_bits=15 is answered with 15",
			[]string{pmd + "; server_max_window_bits=15"}, p{}, pmd + "; server_max_window_bits=15", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"server_max_window_bits=10 is declined by a compressor that keeps 15",
			[]string{pmd + "; server_max_window_bits=10"}, p{}, "", p{}},
		{"server_max_window_bits=8 is accepted by a policy of 8",
			[]string{pmd + "; server_max_window_bits=8"}, p{ServerMaxWindowBits: 8}, pmd + "; server_max_window_bits=8", p{ServerMaxWindowBits: 8, ClientMaxWindowBits: 15}},
		{"server_max_window_bits=8 is declined by a policy of 10, whose window is larger",
			[]string{pmd + "; server_max_window_bits=8"}, p{ServerMaxWindowBits: 10}, "", p{}},
		{"server_max_window_bits=10 is answered with the policy's smaller window",
			[]string{pmd + "; server_max_window_bits=10"}, p{ServerMaxWindowBits: 9}, pmd + "; server_max_window_bits=9", p{ServerMaxWindowBits: 9, ClientMaxWindowBits: 15}},
		{"a policy window is not announced to a client that did not offer server_max_window_bits",
			[]string{pmd}, p{ServerMaxWindowBits: 10}, pmd, p{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}},
		{"server_max_window_bits=16 is declined",
			[]string{pmd + "; server_max_window_bits=16"}, p{}, "", p{}},
		{"client_max_window_bits=10 is answered with 10",
			[]string{pmd + "; client_max_window_bits=10"}, p{}, pmd + "; client_max_window_bits=10", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 10}},
		{"client_max_window_bits without a value is answered with the policy's limit",
			[]string{pmd + "; client_max_window_bits"}, p{ClientMaxWindowBits: 10}, pmd + "; client_max_window_bits=10", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 10}},
		{"client_max_window_bits is answered with the smaller of offer and policy",
			[]string{pmd + "; client_max_window_bits=12"}, p{ClientMaxWindowBits: 10}, pmd + "; client_max_window_bits=10", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 10}},
		{"client_max_window_bits is never answered to an offer without it",
			[]string{pmd}, p{ClientMaxWindowBits: 10}, pmd, p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"quoted values unquote", []string{pmd + `; client_max_window_bits="10"; server_max_window_bits="1\5"`}, p{},
			pmd + "; server_max_window_bits=15; client_max_window_bits=10", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 10}},
		{"every policy field at once", []string{pmd + "; client_max_window_bits; server_max_window_bits=12"},
			p{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 11, ClientMaxWindowBits: 9},
			pmd + "; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=9",
			p{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 11, ClientMaxWindowBits: 9}},
		{"an unknown parameter declines the offer", []string{pmd + "; foo"}, p{}, "", p{}},
		{"a parameter given twice declines the offer", []string{pmd + "; server_no_context_takeover; server_no_context_takeover"}, p{}, "", p{}},
		{"client_max_window_bits given twice declines the offer", []string{pmd + "; client_max_window_bits; client_max_window_bits=10"}, p{}, "", p{}},
		{"server_no_context_takeover with a value declines the offer", []string{pmd + "; server_no_context_takeover=1"}, p{}, "", p{}},
		{"client_no_context_takeover with a value declines the offer", []string{pmd + `; client_no_context_takeover="x"`}, p{}, "", p{}},
		{"server_max_window_bits without a value declines the offer", []string{pmd + "; server_max_window_bits"}, p{}, "", p{}},
		{"a window of 7 declines the offer", []string{pmd + "; client_max_window_bits=7"}, p{}, "", p{}},
		{"a window with a leading zero declines the offer", []string{pmd + "; client_max_window_bits=09"}, p{}, "", p{}},
		{"a window that is not a number declines the offer", []string{pmd + "; client_max_window_bits=ten"}, p{}, "", p{}},
		{"the first offer invalid, the second valid: the second is agreed",
			[]string{pmd + "; foo, " + pmd + "; client_max_window_bits"}, p{}, pmd + "; client_max_window_bits=15", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"the first offer declined, the second acceptable: the second is agreed",
			[]string{pmd + "; server_max_window_bits=10", pmd}, p{}, pmd, p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"offers are tried in the client's order",
			[]string{pmd + "; client_no_context_takeover, " + pmd}, p{}, pmd + "; client_no_context_takeover",
			p{ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"an unknown extension beside permessage-deflate is ignored",
			[]string{"x-webkit-deflate-frame, " + pmd + `, foo; bar="baz"`}, p{}, pmd, p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"a quoted value that unescapes to more than a token makes the header malformed",
			[]string{pmd + `, foo; bar="baz, qux"`}, p{}, "", p{}},
		{"the extension name is matched ignoring ASCII case", []string{"PerMessage-Deflate"}, p{}, pmd, p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"a name that only contains permessage-deflate is another extension", []string{"x-permessage-deflate-foo"}, p{}, "", p{}},
		{"white space around parameters and = is tolerated",
			[]string{pmd + " ;\tclient_max_window_bits = 10 "}, p{}, pmd + "; client_max_window_bits=10", p{ServerMaxWindowBits: 15, ClientMaxWindowBits: 10}},
		{"a malformed header means no extension, even with a valid offer in it", []string{pmd + ", a b"}, p{}, "", p{}},
		{"a malformed permessage-deflate offer after the agreed one makes the header malformed",
			[]string{pmd + ", " + pmd + "; =10"}, p{}, "", p{}},
		{"an unterminated quoted string means no extension", []string{pmd + `; client_max_window_bits="10`}, p{}, "", p{}},
		{"a quoted value that is not a token means no extension", []string{pmd + `; client_max_window_bits="1 0"`}, p{}, "", p{}},
		{"no offer means no extension", nil, p{}, "", p{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, ok := negotiateDeflate(tc.lines, &tc.policy)
			answer := ""
			if ok {
				answer = string(appendDeflate(nil, &a))
			}
			if answer != tc.answer || ok && a.params != tc.agreed {
				t.Errorf("negotiateDeflate(%q) = %q %+v, want %q %+v", tc.lines, answer, a.params, tc.answer, tc.agreed)
			}
			refAnswer, refAgreed, refOK := refNegotiateDeflate(strings.Join(tc.lines, ", "), tc.policy)
			if refAnswer != answer || refOK != ok || ok && refAgreed != a.params {
				t.Errorf("the reference says %q %+v", refAnswer, refAgreed)
			}
		})
	}
}

// realOffers are the Sec-WebSocket-Extensions real clients send.
var realOffers = []struct{ client, offer string }{
	{"chromium", "permessage-deflate; client_max_window_bits"},
	{"firefox", "permessage-deflate"},
	{"node-ws", "permessage-deflate; client_max_window_bits"},
}

// realRequest returns a WebSocket request with the headers a browser sends,
// offering extensions.
func realRequest(extensions string) *http.Request {
	return &http.Request{Method: "GET", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com", Header: http.Header{
		"Connection":               {"Upgrade"},
		"Upgrade":                  {"websocket"},
		"Origin":                   {"https://example.com"},
		"Sec-Websocket-Version":    {"13"},
		"Sec-Websocket-Key":        {testKey},
		"Sec-Websocket-Protocol":   {"v2.chat, v1.chat"},
		"Sec-Websocket-Extensions": {extensions},
		"User-Agent":               {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36"},
		"Accept-Encoding":          {"gzip, deflate, br, zstd"},
		"Cache-Control":            {"no-cache"},
	}}
}

// TestNegotiateAllocs holds validation and negotiation of real clients'
// requests, subprotocol and permessage-deflate included, to no allocation.
func TestNegotiateAllocs(t *testing.T) {
	c := newConfig([]Option{Protocols("websocket"), Subprotocols("v1.chat"), Deflate(DeflateParams{})})
	for _, rc := range realOffers {
		r := realRequest(rc.offer)
		n := testing.AllocsPerRun(100, func() {
			d, rej := validate(r, c)
			if n, rej2 := negotiate(r, c, d); rej != nil || rej2 != nil || !n.deflateOK {
				t.Fatal("the request was refused or deflate not agreed")
			}
		})
		if n != 0 {
			t.Errorf("%s: validate and negotiate allocate %v times, want 0", rc.client, n)
		}
	}
}

// BenchmarkNegotiate measures validate and negotiate, the pure steps, on the
// request each real client sends: subprotocol and permessage-deflate.
func BenchmarkNegotiate(b *testing.B) {
	c := newConfig([]Option{Protocols("websocket"), Subprotocols("v1.chat"), Deflate(DeflateParams{})})
	for _, rc := range realOffers {
		b.Run(rc.client, func(b *testing.B) {
			b.ReportAllocs()
			r := realRequest(rc.offer)
			for b.Loop() {
				d, _ := validate(r, c)
				negotiate(r, c, d)
			}
		})
	}
}

// A refElem is one extension of the reference parser.
type refElem struct {
	name   string
	params []refParam
}

// A refParam is one extension parameter, its value unquoted.
type refParam struct {
	name, value string
	hasValue    bool
}

// refParseExtensions parses a Sec-WebSocket-Extensions value byte by byte,
// the plain way, as a reference for the fuzz target: RFC 6455, section 9.1
// with RFC 9110 lists, optional white space around "=", and quoted values
// that must unescape to tokens.
func refParseExtensions(s string) ([]refElem, bool) {
	const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	i := 0
	ws := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	token := func() string {
		j := i
		for i < len(s) && strings.IndexByte(tchars, s[i]) >= 0 {
			i++
		}
		return s[j:i]
	}
	quoted := func() (string, bool) { // at the opening quote
		var v []byte
		for i++; i < len(s); i++ {
			switch c := s[i]; {
			case c == '"':
				i++
				return string(v), true
			case c == '\\' && i+1 < len(s):
				i++
				v = append(v, s[i])
			default:
				v = append(v, c)
			}
		}
		return "", false
	}
	var elems []refElem
	for {
		ws()
		if i == len(s) {
			return elems, true
		}
		if s[i] == ',' {
			i++
			continue
		}
		e := refElem{name: token()}
		if e.name == "" {
			return nil, false
		}
		for {
			ws()
			if i == len(s) || s[i] == ',' {
				break
			}
			if s[i] != ';' {
				return nil, false
			}
			i++
			ws()
			p := refParam{name: token()}
			if p.name == "" {
				return nil, false
			}
			ws()
			if i < len(s) && s[i] == '=' {
				i++
				ws()
				p.hasValue = true
				if i < len(s) && s[i] == '"' {
					v, ok := quoted()
					if !ok || v == "" || strings.Trim(v, tchars) != "" {
						return nil, false
					}
					p.value = v
				} else if p.value = token(); p.value == "" {
					return nil, false
				}
			}
			e.params = append(e.params, p)
		}
		elems = append(elems, e)
	}
}

// refNegotiateDeflate is RFC 7692, section 7 and the Deflate policy
// written out plainly, as a reference for the fuzz target.
func refNegotiateDeflate(header string, policy DeflateParams) (answer string, agreed DeflateParams, ok bool) {
	elems, wellFormed := refParseExtensions(header)
	if !wellFormed {
		return "", DeflateParams{}, false
	}
	bits := func(v string) int {
		n, err := strconv.Atoi(v)
		if err != nil || n < 8 || n > 15 || strconv.Itoa(n) != v {
			return 0
		}
		return n
	}
offers:
	for _, e := range elems {
		if strings.ToLower(e.name) != "permessage-deflate" {
			continue
		}
		seen := map[string]bool{}
		var snct, cnct bool
		smwb, cmwb := 0, 0 // 0: absent; -1: without a value
		for _, p := range e.params {
			name := strings.ToLower(p.name)
			if seen[name] {
				continue offers
			}
			seen[name] = true
			switch name {
			case "server_no_context_takeover", "client_no_context_takeover":
				if p.hasValue {
					continue offers
				}
				snct = snct || name == "server_no_context_takeover"
				cnct = cnct || name == "client_no_context_takeover"
			case "server_max_window_bits":
				if smwb = bits(p.value); !p.hasValue || smwb == 0 {
					continue offers
				}
			case "client_max_window_bits":
				cmwb = -1
				if p.hasValue {
					if cmwb = bits(p.value); cmwb == 0 {
						continue offers
					}
				}
			default:
				continue offers
			}
		}
		serverBits, clientBits := policy.ServerMaxWindowBits, policy.ClientMaxWindowBits
		if serverBits == 0 {
			serverBits = 15
		}
		if clientBits == 0 {
			clientBits = 15
		}
		if smwb > 0 && smwb < serverBits {
			continue
		}
		agreed = DeflateParams{
			ServerNoContextTakeover: policy.ServerNoContextTakeover || snct,
			ClientNoContextTakeover: policy.ClientNoContextTakeover || cnct,
			ServerMaxWindowBits:     serverBits,
			ClientMaxWindowBits:     15,
		}
		answer = "permessage-deflate"
		if agreed.ServerNoContextTakeover {
			answer += "; server_no_context_takeover"
		}
		if agreed.ClientNoContextTakeover {
			answer += "; client_no_context_takeover"
		}
		if smwb != 0 {
			answer += "; server_max_window_bits=" + strconv.Itoa(serverBits)
		}
		if cmwb != 0 {
			agreed.ClientMaxWindowBits = clientBits
			if cmwb > 0 && cmwb < clientBits {
				agreed.ClientMaxWindowBits = cmwb
			}
			answer += "; client_max_window_bits=" + strconv.Itoa(agreed.ClientMaxWindowBits)
		}
		return answer, agreed, true
	}
	return "", DeflateParams{}, false
}

// FuzzExtensions checks that, whatever Sec-WebSocket-Extensions comes in,
// negotiation does not panic, agrees with the reference, and any answer
// re-parses as one permessage-deflate element whose parameters are each
// valid, given once, and a valid answer to an offer (RFC 7692, section 7).
func FuzzExtensions(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate; client_max_window_bits", "permessage-deflate",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11",
		`permessage-deflate; client_max_window_bits="10", permessage-deflate`, "x-webkit-deflate-frame, permessage-deflate; foo",
		"permessage-deflate; server_max_window_bits=08", `foo; bar="a,b\"c"`,
	} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, header string, policyBits uint8) {
		policy := DeflateParams{
			ServerNoContextTakeover: policyBits&1 != 0,
			ClientNoContextTakeover: policyBits&2 != 0,
			ServerMaxWindowBits:     []int{0, 8, 10, 15}[policyBits>>2&3],
			ClientMaxWindowBits:     []int{0, 8, 12, 15}[policyBits>>4&3],
		}
		a, ok := negotiateDeflate([]string{header}, &policy)
		answer := ""
		if ok {
			answer = string(appendDeflate(nil, &a))
		}
		refAnswer, refAgreed, refOK := refNegotiateDeflate(header, policy)
		if answer != refAnswer || ok != refOK || ok && a.params != refAgreed {
			t.Fatalf("negotiateDeflate(%q, %+v) = %q %+v, reference says %q %+v", header, policy, answer, a.params, refAnswer, refAgreed)
		}
		if !ok {
			return
		}
		elems, wellFormed := refParseExtensions(answer)
		if !wellFormed || len(elems) != 1 || elems[0].name != "permessage-deflate" {
			t.Fatalf("answer %q does not parse as one permessage-deflate", answer)
		}
		seen := map[string]bool{}
		for _, p := range elems[0].params {
			if seen[p.name] {
				t.Fatalf("answer %q has %s twice", answer, p.name)
			}
			seen[p.name] = true
			if strings.HasSuffix(p.name, "_window_bits") && (!p.hasValue || p.value < "8" && p.value != "10" && p.value != "11" && p.value != "12" && p.value != "13" && p.value != "14" && p.value != "15") {
				t.Fatalf("answer %q has %s without a valid value", answer, p.name)
			}
		}
		if seen["client_max_window_bits"] && !strings.Contains(strings.ToLower(header), "client_max_window_bits") {
			t.Fatalf("answer %q has client_max_window_bits, which %q did not offer", answer, header)
		}
	})
}
