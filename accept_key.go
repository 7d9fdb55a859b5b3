package cooper

import (
	"crypto/sha1"
	"encoding/base64"
)

// keyGUID is the GUID RFC 6455, section 1.3 appends to the client's key.
const keyGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// acceptKeyLen is the length of a Sec-WebSocket-Accept value: a base64
// SHA-1 digest.
const acceptKeyLen = 28

// AcceptKey returns the Sec-WebSocket-Accept value that answers the
// Sec-WebSocket-Key value key (RFC 6455, section 4.2.2): the base64 SHA-1
// digest of key, without surrounding white space, followed by the RFC's
// GUID. It does not check that key is a valid key; cooper's server does that
// before it answers.
func AcceptKey(key string) string {
	var buf [acceptKeyLen]byte
	return string(AppendAcceptKey(buf[:0], key))
}

// AppendAcceptKey appends [AcceptKey](key) to dst and returns the extended
// slice. It does not allocate when dst has room for 28 more bytes and key is
// at most 92 bytes long, which every valid key (24 bytes) is.
func AppendAcceptKey(dst []byte, key string) []byte {
	key = trimOWS(key)
	var sum [sha1.Size]byte
	var buf [128]byte
	if len(key)+len(keyGUID) <= len(buf) {
		n := copy(buf[:], key)
		n += copy(buf[n:], keyGUID)
		sum = sha1.Sum(buf[:n])
	} else {
		// allocates: a key this long is invalid anyway, and is hashed only
		// when a caller asks for it directly.
		sum = sha1.Sum([]byte(key + keyGUID))
	}
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

// isValidKey reports whether key, a Sec-WebSocket-Key value, decodes to 16
// bytes (RFC 6455, section 4.1): standard padded base64, white space around
// it ignored.
func isValidKey(key string) bool {
	key = trimOWS(key)
	// 16 bytes encode to 22 base64 characters and "==".
	if len(key) != 24 || key[22] != '=' || key[23] != '=' {
		return false
	}
	var b [18]byte
	n, err := base64.StdEncoding.Decode(b[:], []byte(key))
	return err == nil && n == 16
}
