package cooper

import (
	"crypto/sha1"
	"encoding/base64"
	"strings"
	"testing"
)

func TestAcceptKey(t *testing.T) {
	cases := []struct {
		name, key, want string
	}{
		{"the sample of RFC 6455, section 1.3", "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
		{"white space around the key is ignored", " \tdGhlIHNhbXBsZSBub25jZQ==\t ", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
		{"a key longer than the stack buffer is hashed too", strings.Repeat("k", 200), refAcceptKey(strings.Repeat("k", 200))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := AcceptKey(tc.key); got != tc.want {
				t.Errorf("AcceptKey(%q) = %q, want %q", tc.key, got, tc.want)
			}
			if got := string(AppendAcceptKey([]byte("x"), tc.key)); got != "x"+tc.want {
				t.Errorf("AppendAcceptKey(\"x\", %q) = %q, want %q", tc.key, got, "x"+tc.want)
			}
		})
	}
}

func TestAppendAcceptKeyAllocs(t *testing.T) {
	buf := make([]byte, 0, acceptKeyLen)
	if n := testing.AllocsPerRun(100, func() { AppendAcceptKey(buf[:0], testKey) }); n != 0 {
		t.Errorf("AppendAcceptKey allocates %v times, want 0", n)
	}
}

func TestIsValidKey(t *testing.T) {
	cases := []struct {
		name string
		key  string
		want bool
	}{
		{"the RFC sample", testKey, true},
		{"white space around it", "\t " + testKey + " ", true},
		{"15 bytes", base64.StdEncoding.EncodeToString(make([]byte, 15)), false},
		{"17 bytes", base64.StdEncoding.EncodeToString(make([]byte, 17)), false},
		{"16 bytes without padding", base64.RawStdEncoding.EncodeToString(make([]byte, 16)), false},
		{"URL-safe alphabet", "________________-_____==", false},
		{"24 characters that are not base64", "!!!!!!!!!!!!!!!!!!!!!!==", false},
		{"white space inside", "dGhlIHNhbXBsZS Bub25jZQ==", false},
		{"empty", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := isValidKey(tc.key); got != tc.want {
				t.Errorf("isValidKey(%q) = %v, want %v", tc.key, got, tc.want)
			}
		})
	}
}

// refAcceptKey is RFC 6455's formula written out with no care for speed.
func refAcceptKey(key string) string {
	sum := sha1.Sum([]byte(strings.Trim(key, " \t") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// refIsValidKey is RFC 6455, section 4.1's rule written out plainly.
func refIsValidKey(key string) bool {
	b, err := base64.StdEncoding.DecodeString(strings.Trim(key, " \t"))
	return err == nil && len(b) == 16 && !strings.ContainsAny(key, "\r\n")
}

// FuzzAcceptKey checks key validation and the accept computation against
// the reference formulas.
func FuzzAcceptKey(f *testing.F) {
	for _, s := range []string{testKey, " " + testKey, "AAAAAAAAAAAAAAAAAAAAAA==", "!!!!!!!!!!!!!!!!!!!!!!==", "", "dGhlIHNhbXBsZSBub25jZQ\n=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if got, want := isValidKey(key), refIsValidKey(key); got != want {
			t.Fatalf("isValidKey(%q) = %v, reference says %v", key, got, want)
		}
		if got, want := AcceptKey(key), refAcceptKey(key); got != want {
			t.Fatalf("AcceptKey(%q) = %q, reference says %q", key, got, want)
		}
	})
}

// BenchmarkAcceptKey measures computing a Sec-WebSocket-Accept into a
// reused buffer, as the server does for every WebSocket upgrade.
func BenchmarkAcceptKey(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, acceptKeyLen)
	for b.Loop() {
		buf = AppendAcceptKey(buf[:0], testKey)
	}
}
