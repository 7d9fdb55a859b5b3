// Package tlsserve is what the examples served over HTTPS share: running
// with extended CONNECT on in Go's HTTP/2 server, the -cert and -key
// flags, and a self-signed certificate for the loopback names.
package tlsserve

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"lowbit.dev/cooper/examples/internal/serve"
)

// A Run is a [serve.Run] for an example served over HTTPS, with cert, the
// certificate it serves.
type Run func(ctx context.Context, addr string, cert tls.Certificate, out io.Writer) error

// Main is serve.Main for an example served over HTTPS. It first makes
// sure the process runs with extended CONNECT on (see ExtendedConnect),
// then defines -cert and -key and passes run the certificate they name,
// or, without them, a self-signed one (see SelfSigned) named name.
func Main(name string, run Run) {
	ExtendedConnect()
	certFile := flag.String("cert", "", "PEM `file` of the certificate chain; a self-signed one without it")
	keyFile := flag.String("key", "", "PEM `file` of the certificate's key")
	serve.Main(func(ctx context.Context, addr string, out io.Writer) error {
		var cert tls.Certificate
		var err error
		if *certFile != "" || *keyFile != "" {
			cert, err = tls.LoadX509KeyPair(*certFile, *keyFile)
		} else {
			cert, err = SelfSigned(name)
		}
		if err != nil {
			return err
		}
		return run(ctx, addr, cert, out)
	})
}

// ExtendedConnect returns if this process started with extended CONNECT
// on in net/http's HTTP/2 server (GODEBUG=http2xconnect=1), which reads
// GODEBUG only then. Otherwise it runs this program again with the same
// arguments and that setting added, passes SIGINT and SIGTERM on to it,
// and exits with its exit code.
func ExtendedConnect() {
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		return
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GODEBUG="+os.Getenv("GODEBUG")+",http2xconnect=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	go func() {
		for s := range signals {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(signals)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		log.Fatal(err)
	}
	os.Exit(0)
}
