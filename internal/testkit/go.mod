module lowbit.dev/cooper/internal/testkit

go 1.26

require (
	github.com/coder/websocket v1.8.15
	github.com/gobwas/httphead v0.1.0
	github.com/gobwas/ws v1.5.0
	github.com/gorilla/websocket v1.5.3
	lowbit.dev/cooper v0.0.0-00010101000000-000000000000
)

// lowbit.dev/cooper is the repository's root module; the go.work at the
// root overrides this when the workspace is in use.
replace lowbit.dev/cooper v0.0.0-00010101000000-000000000000 => ../..
