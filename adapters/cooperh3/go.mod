module lowbit.dev/cooper/adapters/cooperh3

go 1.26.0

require (
	github.com/quic-go/qpack v0.6.0
	github.com/quic-go/quic-go v0.65.0
	lowbit.dev/cooper v0.0.0-00010101000000-000000000000
	lowbit.dev/cooper/internal/testkit v0.0.0-00010101000000-000000000000
)

require (
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)

// lowbit.dev/cooper is the repository's root module; the go.work at the
// root overrides this when the workspace is in use.
replace lowbit.dev/cooper v0.0.0-00010101000000-000000000000 => ../..

// The tests' helpers, shared with the other modules, are in this repository.
replace lowbit.dev/cooper/internal/testkit v0.0.0-00010101000000-000000000000 => ../../internal/testkit
