package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// The server side of the harness: the bench binary re-executed with
// serverEnv naming a server runs that server on 127.0.0.1 and answers
// control commands, one a line, on standard input. It prints
// "ready <addr>" once it listens; each command gets one line back.
//
//	stats   the process's counters now (a serverStats)
//	gc      the same, and the open files, after two garbage collections
//	quit    stop profiling, write profiles, exit
//
// The process exits when standard input closes, so it cannot outlive the
// harness.

// Environment variables of a server process.
const (
	serverEnv     = "COOPER_BENCH_SERVER"     // the server to run
	cpuProfileEnv = "COOPER_BENCH_CPUPROFILE" // write a CPU profile of the process's life here
	memProfileEnv = "COOPER_BENCH_MEMPROFILE" // record every allocation; write the profile here
)

// A serverKind is a server the harness can run.
type serverKind struct {
	name      string
	websocket bool // it upgrades and echoes; false for bare TCP
	serve     func(net.Listener, *serverState) error
	note      string // how it is set up, for the notes under the table
}

// serverKinds lists the servers, the floor first. read-only
var serverKinds = []serverKind{
	{"floor", true, floorServer, "net/http + `http.NewResponseController(w).Hijack()`, RFC 6455 §4.2.1 checks, a fixed 101 with a computed Accept (answers `chat` and a plain `permessage-deflate` when offered); echo on a goroutine of its own with the shared minimal frame echo"},
	{"cooper", true, cooperServer, "`cooper.Hijack(h, Protocols(\"websocket\"), Subprotocols(\"chat\"), Deflate(DeflateParams{}))`; the shared minimal frame echo (never compresses)"},
	{"cooper-handler", true, cooperHandlerServer, "the same options with `cooper.New` + `Upgrader.Handler`, whose handler also gets the `*Handshake`; the shared minimal frame echo"},
	{"gorilla", true, gorillaServer, "gorilla/websocket `Upgrader{Subprotocols, EnableCompression: true}`, `EnableWriteCompression(false)`; `ReadMessage`/`WriteMessage` on a goroutine"},
	{"coder", true, coderServer, "coder/websocket `Accept` with `Subprotocols`, `CompressionContextTakeover` (compresses only messages ≥ 512 B); `Read`/`Write` on a goroutine"},
	{"gobwas", true, gobwasServer, "gobwas/ws `HTTPUpgrader{Protocol, Negotiate: wsflate.Extension{DefaultParameters}.Negotiate}` (no context takeover); `wsutil.ReadClientData`/`WriteServerMessage` (never compress) on a goroutine"},
	{"gobwas-raw", true, gobwasRawServer, "gobwas/ws `Upgrader` over the accepted `net.Conn`, no net/http (an outside reference); same negotiation and echo as gobwas"},
	{"gws", true, gwsServer, "lxzan/gws `NewUpgrader` with `PermessageDeflate{Enabled: true}` (no context takeover: compresses only messages ≥ 512 B), `SubProtocols`; `go ReadLoop()`, echo from `OnMessage`"},
	{"bare", false, bareServer, "a TCP listener, one goroutine per accepted connection that writes one byte (so the client knows it was accepted) and parks in `Read` (idle and ramp only)"},
}

// kindByName returns the server named name.
func kindByName(name string) (serverKind, bool) {
	for _, k := range serverKinds {
		if k.name == name {
			return k, true
		}
	}
	return serverKind{}, false
}

// errEarlyData is counted when a client sent bytes before the 101, which no
// harness client does.
var errEarlyData = errors.New("bench: client sent data before the 101")

// serverState counts what a server process did, for the stats command.
type serverState struct {
	echoes atomic.Int64 // messages echoed (bare: connections greeted)
	fails  atomic.Int64 // failed upgrades and echoes
	mu     sync.Mutex
	first  string // the first failure
}

// fail counts err as a failed upgrade or echo.
func (st *serverState) fail(err error) {
	if st.fails.Add(1) == 1 {
		st.mu.Lock()
		st.first = err.Error()
		st.mu.Unlock()
	}
}

// serverStats is a server process's answer to stats and gc.
type serverStats struct {
	Mallocs    int64 // runtime.MemStats.Mallocs
	TotalAlloc int64 // runtime.MemStats.TotalAlloc
	CPU        int64 // user + system CPU time of the process, ns
	Heap       int64 // runtime.MemStats.HeapAlloc
	Stack      int64 // runtime.MemStats.StackInuse
	Goroutines int64
	Echoes     int64
	Fails      int64
	OpenFiles  int64 // open file descriptors; -1 if unknown or not asked for
	FileLimit  int64 // the soft RLIMIT_NOFILE
	FirstFail  string
}

// serveHTTP serves h on ln with a plain http.Server, as most services do.
// Its log goes to standard error, which the harness shows on failure.
func serveHTTP(ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ErrorLog: log.New(os.Stderr, "http: ", 0)}
	return srv.Serve(ln)
}

// serveConns accepts connections on ln and runs serve on each in a
// goroutine of its own, as the servers that do without net/http do, until
// Accept fails; it returns Accept's error.
func serveConns(ln net.Listener, serve func(c net.Conn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serve(c)
	}
}

// runServer is the main function of a server process running kind.
func runServer(kind string) error {
	k, ok := kindByName(kind)
	if !ok {
		return fmt.Errorf("unknown server %q", kind)
	}
	memProfile := os.Getenv(memProfileEnv)
	if memProfile != "" {
		runtime.MemProfileRate = 1
	}
	if path := os.Getenv(cpuProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	st := &serverState{}
	go func() {
		err := k.serve(ln, st)
		fmt.Fprintf(os.Stderr, "bench: %s stopped serving: %v\n", kind, err)
		os.Exit(2)
	}()
	fmt.Printf("ready %s\n", ln.Addr())
	err = control(os.Stdin, os.Stdout, st)
	if memProfile != "" {
		if werr := writeAllocsProfile(memProfile); err == nil {
			err = werr
		}
	}
	return err
}

// control answers the commands read from in on out until quit or the end
// of in. Answering allocates nothing, so that the allocations a measurement
// counts are the server's own.
func control(in io.Reader, out io.Writer, st *serverState) error {
	sc := bufio.NewScanner(in)
	var line []byte
	for sc.Scan() {
		var s serverStats
		switch cmd := sc.Bytes(); string(cmd) {
		case "quit":
			return nil
		case "gc":
			runtime.GC()
			runtime.GC()
			s = st.stats(true)
		case "stats":
			s = st.stats(false)
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
		line = s.appendLine(line[:0])
		if _, err := out.Write(line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// stats reads the process's counters, and, with files, the open files,
// which allocates. Everything that allocates happens before the memory
// statistics are read.
func (st *serverState) stats(files bool) serverStats {
	s := serverStats{OpenFiles: -1, FileLimit: int64(fileLimit())}
	if files {
		s.OpenFiles = int64(openFiles())
	}
	if s.Fails = st.fails.Load(); s.Fails > 0 {
		st.mu.Lock()
		s.FirstFail = st.first
		st.mu.Unlock()
	}
	s.Echoes = st.echoes.Load()
	s.Goroutines = int64(runtime.NumGoroutine())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.Mallocs, s.TotalAlloc = int64(ms.Mallocs), int64(ms.TotalAlloc)
	s.Heap, s.Stack = int64(ms.HeapAlloc), int64(ms.StackInuse)
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	s.CPU = ru.Utime.Nano() + ru.Stime.Nano()
	return s
}

// appendLine appends s to b as the line a server process answers with: its
// numbers in the order of the fields, separated by spaces, then FirstFail
// quoted.
func (s *serverStats) appendLine(b []byte) []byte {
	for _, n := range s.numbers() {
		b = strconv.AppendInt(b, *n, 10)
		b = append(b, ' ')
	}
	b = strconv.AppendQuote(b, s.FirstFail)
	return append(b, '\n')
}

// parseLine parses a line appendLine wrote.
func (s *serverStats) parseLine(line string) error {
	nums := s.numbers()
	fields := strings.SplitN(line, " ", len(nums)+1)
	if len(fields) != len(nums)+1 {
		return errors.New("too few fields")
	}
	for i, n := range nums {
		var err error
		if *n, err = strconv.ParseInt(fields[i], 10, 64); err != nil {
			return err
		}
	}
	var err error
	s.FirstFail, err = strconv.Unquote(fields[len(nums)])
	return err
}

// numbers returns the numeric fields of s, in the order of a stats line.
func (s *serverStats) numbers() [10]*int64 {
	return [...]*int64{&s.Mallocs, &s.TotalAlloc, &s.CPU, &s.Heap, &s.Stack,
		&s.Goroutines, &s.Echoes, &s.Fails, &s.OpenFiles, &s.FileLimit}
}

// writeAllocsProfile writes the allocation profile to path, after a GC so
// that it counts every allocation until now (the profile is as of the last
// GC).
func writeAllocsProfile(path string) error {
	runtime.GC()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// fileLimit returns the soft limit on open files, or -1.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return -1
	}
	return int(rl.Cur)
}

// openFiles returns how many files the process has open, or -1 where that
// cannot be counted.
func openFiles() int {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return -1
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names) - 1 // d itself
}
