module lowbit.dev/cooper/internal/testkit

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/gobwas/httphead v0.1.0
	github.com/gobwas/ws v1.5.0
	github.com/gorilla/websocket v1.5.3
	golang.org/x/net v0.62.0
	lowbit.dev/cooper v0.0.0-00010101000000-000000000000
)

require golang.org/x/text v0.43.0 // indirect

// lowbit.dev/cooper is the repository's root module; the go.work at the
// root overrides this when the workspace is in use.
replace lowbit.dev/cooper v0.0.0-00010101000000-000000000000 => ../..
