module lowbit.dev/cooper/examples

go 1.26

require (
	github.com/gobwas/httphead v0.1.0
	github.com/gobwas/ws v1.5.0
	github.com/gorilla/websocket v1.5.3
	lowbit.dev/cooper v0.0.0-00010101000000-000000000000
)

// The cooper modules are in this repository; the go.work at the root
// overrides these when the workspace is in use.
replace (
	lowbit.dev/cooper v0.0.0-00010101000000-000000000000 => ../
	lowbit.dev/cooper/adapters/cooperchi v0.0.0-00010101000000-000000000000 => ../adapters/cooperchi
	lowbit.dev/cooper/adapters/coopergin v0.0.0-00010101000000-000000000000 => ../adapters/coopergin
)
