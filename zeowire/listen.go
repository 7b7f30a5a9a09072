package zeowire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Listen opens the listening socket for a zeo.conf address: "host:port",
// ":port" / "port" (all interfaces), "[v6]:port", or a path (anything
// containing '/') for a Unix-domain socket. A stale Unix socket file left by
// a previous server is removed first.
func Listen(address string) (net.Listener, error) {
	if strings.Contains(address, "/") {
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&fs.ModeSocket != 0 {
			// Refuse to steal the socket of a server that still answers.
			if c, err := net.DialTimeout("unix", address, time.Second); err == nil {
				c.Close()
				return nil, fmt.Errorf("listen unix %s: a server is already listening there", address)
			}
			os.Remove(address)
		}
		return net.Listen("unix", address)
	}
	if !strings.Contains(address, ":") {
		address = ":" + address
	}
	return net.Listen("tcp", address)
}

// ListenAndServe listens on address (see Listen) and serves until ctx is
// done, then shuts down, giving connections up to grace to finish. It
// returns nil after a shutdown asked for by ctx.
func (s *Server) ListenAndServe(ctx context.Context, address string, grace time.Duration) error {
	ln, err := Listen(address)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = s.Shutdown(sctx)
	<-served
	if ln.Addr().Network() == "unix" {
		os.Remove(address)
	}
	return err
}

// ServerTLSConfig builds the TLS configuration of a zeo.conf <ssl> section
// as the reference server uses it: the server certificate and key, and a
// client certificate always required, verified against authenticate (a CA
// file, a directory of CA files, or "DYNAMIC" for the system roots).
func ServerTLSConfig(certFile, keyFile, authenticate string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("ssl certificate %s / key %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	pool, err := caPool(authenticate)
	if err != nil {
		return nil, err
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}

// ClientTLSConfig builds a client's TLS configuration: an optional client
// certificate, the server verified against authenticate (CA file or
// directory; "" or "DYNAMIC" for the system roots) and, if checkHostname,
// against serverName.
func ClientTLSConfig(certFile, keyFile, authenticate, serverName string, checkHostname bool) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("ssl certificate %s / key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	pool, err := caPool(authenticate)
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = pool
	if !checkHostname {
		// Verify the chain but not the name, as Python's check_hostname=False.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: pool, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return cfg, nil
}

// caPool loads CA certificates from a file or a directory; "" and
// "DYNAMIC" mean the system roots (nil pool).
func caPool(authenticate string) (*x509.CertPool, error) {
	if authenticate == "" || authenticate == "DYNAMIC" {
		return x509.SystemCertPool()
	}
	pool := x509.NewCertPool()
	fi, err := os.Stat(authenticate)
	if err != nil {
		return nil, fmt.Errorf("ssl authenticate: %w", err)
	}
	files := []string{authenticate}
	if fi.IsDir() {
		entries, err := os.ReadDir(authenticate)
		if err != nil {
			return nil, fmt.Errorf("ssl authenticate: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			if !e.IsDir() {
				files = append(files, filepath.Join(authenticate, e.Name()))
			}
		}
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ssl authenticate: %w", err)
		}
		if pool.AppendCertsFromPEM(b) {
			n++
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("ssl authenticate %s: no PEM certificates found", authenticate)
	}
	return pool, nil
}
