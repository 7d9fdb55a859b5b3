package wsclient

import (
	"strings"

	"github.com/gobwas/httphead"
)

// Extensions writes extensions as parsed by gobwas/ws back as a
// Sec-WebSocket-Extensions value in the form cooper answers with:
// "name; param; param=value", the extensions separated by ", ".
func Extensions(extensions []httphead.Option) string {
	var s []string
	for _, opt := range extensions {
		e := string(opt.Name)
		opt.Parameters.ForEach(func(k, v []byte) bool {
			e += "; " + string(k)
			if len(v) > 0 {
				e += "=" + string(v)
			}
			return true
		})
		s = append(s, e)
	}
	return strings.Join(s, ", ")
}
