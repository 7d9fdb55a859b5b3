module lowbit.dev/cooper/interop

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/gobwas/httphead v0.1.0
	github.com/gobwas/ws v1.5.0
	github.com/gorilla/websocket v1.5.3
	github.com/lxzan/gws v1.8.9
	golang.org/x/net v0.62.0
	lowbit.dev/cooper v0.0.0-00010101000000-000000000000
	lowbit.dev/cooper/adapters/coopergobwas v0.0.0-00010101000000-000000000000
	lowbit.dev/cooper/cmd/cooperprobe v0.0.0-00010101000000-000000000000
	lowbit.dev/cooper/internal/testkit v0.0.0-00010101000000-000000000000
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	golang.org/x/text v0.43.0 // indirect
)

replace lowbit.dev/cooper => ../

replace lowbit.dev/cooper/cmd/cooperprobe => ../cmd/cooperprobe

replace lowbit.dev/cooper/adapters/coopergobwas => ../adapters/coopergobwas

replace lowbit.dev/cooper/internal/testkit => ../internal/testkit
