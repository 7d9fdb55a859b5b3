module lowbit.dev/cooper

// The root module requires nothing outside the standard library, tests
// included; adapters, examples, interop and benchmarks are modules of their own.
go 1.26
