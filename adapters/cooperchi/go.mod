module lowbit.dev/cooper/adapters/cooperchi

go 1.26.0

require (
	github.com/go-chi/chi/v5 v5.5.0
	lowbit.dev/cooper v0.0.0-00010101000000-000000000000
	lowbit.dev/cooper/internal/testkit v0.0.0-00010101000000-000000000000
)

require (
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)

// lowbit.dev/cooper is the repository's root module; the go.work at the
// root overrides this when the workspace is in use.
replace lowbit.dev/cooper v0.0.0-00010101000000-000000000000 => ../..

// The tests' helpers, shared with the other modules, are in this repository.
replace lowbit.dev/cooper/internal/testkit v0.0.0-00010101000000-000000000000 => ../../internal/testkit
