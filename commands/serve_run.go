package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/renameio/v2"
	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/mkinstance"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/fsstore"
	"github.com/zodbctl/zodbctl/zeowire/memstore"
)

// The running server: storages built from the configuration (filestorage →
// zeowire/fsstore, mappingstorage → zeowire/memstore), TLS, logs, pid file,
// signals, metrics. serve.go owns flags and configuration loading.

// DefaultServeAddress is where `zodbctl serve` with no options listens.
const DefaultServeAddress = "127.0.0.1:8100"

// defaultServeAddress is DefaultServeAddress; tests make it port 0.
var defaultServeAddress = DefaultServeAddress

// shutdownGrace is how long a stopping server lets in-flight calls finish.
const shutdownGrace = 10 * time.Second

// serveStarted, when set (tests), is called once the server listens, with
// its address and a function that stops it as SIGTERM would.
var serveStarted func(addr net.Addr, stop func())

func init() {
	runServer = runServe
	serveCommand.Flags = append(serveCommand.Flags,
		&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics on `ADDR` (host:port) at /metrics"},
		&cli.BoolFlag{Name: "log-json", Usage: "write the log as JSON lines instead of text"},
		&cli.StringFlag{Name: "cpu-profile", Usage: "write a Go CPU profile of the server to `FILE` (for benchmarks)", Hidden: true},
		// Per-connection limits (zeo.conf's schema has no keys for them).
		&cli.Int64Flag{Name: "max-frame-size", Usage: "close a connection that sends a frame over `BYTES`", Value: zeowire.DefaultMaxFrameSize},
		&cli.IntFlag{Name: "max-pending-calls", Usage: "answer at most `N` slow calls (loads of blobs, undo, pack…) of one connection at once", Value: zeowire.DefaultMaxPendingCalls},
		&cli.IntFlag{Name: "outbound-queue", Usage: "disconnect a client that lets `N` replies and invalidations wait unread", Value: zeowire.DefaultOutboundQueue},
		&cli.DurationFlag{Name: "register-timeout", Usage: "close a connection not registered with a storage after `DURATION` (0: never)", Value: zeowire.DefaultRegisterTimeout},
		&cli.DurationFlag{Name: "write-timeout", Usage: "disconnect a client a write to which makes no progress for `DURATION` (0: never)", Value: zeowire.DefaultWriteTimeout},
	)
	serveCommand.Description += `

With no -C, -a or -f at all, serve runs a fresh two-database instance: storages
1 and 2 in ./var/Data1.fs and ./var/Data2.fs (created if missing) on ` + DefaultServeAddress + `,
and prints on stderr how to connect to it.

Conflict resolution: the server cannot run Python _p_resolveConflict, so
serve always works in ZEO's client-conflict-resolution mode: a write conflict
at vote is sent back to the client, and the Python ZEO client resolves it
(BTrees, Length, any class with _p_resolveConflict) and votes again. Every ZEO 5
and 6 client supports this. Conflicts it cannot resolve raise ConflictError in
the client as usual.

Running: the log (slog text, or JSON with --log-json) goes to the first
<logfile> of <eventlog> (path, or STDOUT/STDERR), else to stderr. SIGTERM and
SIGINT stop the server cleanly (exit 0): no new connections, transactions
being finished complete, others are aborted, storages are closed
(Data.fs.index saved), the pid file removed. SIGHUP and SIGUSR2 reopen the log
file (for rotation; runzeo exits on SIGHUP so that zdaemon restarts it, serve
does not). The pid file is written unless the server is read-only.
--metrics ADDR serves Prometheus text metrics at http://ADDR/metrics.

Storages: <filestorage> (served from the Data.fs itself, as FileStorage
writes it: Data.fs.lock, Data.fs.index saved on stop, an interrupted last
transaction moved to Data.fs.trN at start, blobs in a bushy blob-dir),
<blobstorage> over a <filestorage>, and <mappingstorage> (in memory). Frames
over 256 MiB close the connection that sent them.`
	inner := serveCommand.Action
	serveCommand.Action = func(c *cli.Context) error {
		if !c.IsSet("configure") && !c.IsSet("address") && !c.IsSet("filename") && !c.Bool("check") && c.NArg() == 0 {
			return serveDefault(c)
		}
		return inner(c)
	}
}

// serveDefault serves the default instance ./var/Data1.fs and Data2.fs.
func serveDefault(c *cli.Context) error {
	if err := os.MkdirAll("var", 0o755); err != nil {
		return exitWith(ExitFailure, "serve: %v", err)
	}
	cfg, err := mkinstance.FlagConfig(defaultServeAddress, []string{filepath.Join("var", "Data1.fs"), filepath.Join("var", "Data2.fs")})
	if err != nil {
		return usageError("serve: %v", err)
	}
	banner := func(addr string) {
		w := c.App.ErrWriter
		fmt.Fprintf(w, "zodbctl serve: no configuration given; serving databases 1 (var/Data1.fs) and 2 (var/Data2.fs) on %s\n", addr)
		fmt.Fprintf(w, `Connect Zope/Plone with this in zope.conf:
    <zodb_db main>
        mount-point /
        <zeoclient>
            server %[1]s
            storage 1
        </zeoclient>
    </zodb_db>
    <zodb_db second>
        mount-point /second
        <zeoclient>
            server %[1]s
            storage 2
        </zeoclient>
    </zodb_db>
or look at it with: zodbctl connect -s %[1]s info
`, addr)
	}
	return serveWith(c, cfg, banner)
}

// reopenWriter is the log destination; Reopen reopens a log file after
// rotation. Writes are serialized so that lines never interleave.
type reopenWriter struct {
	mu   sync.Mutex
	path string // "" for a fixed writer
	w    io.Writer
	f    *os.File
}

func (r *reopenWriter) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.w.Write(p)
}

func (r *reopenWriter) Reopen() error {
	if r.path == "" {
		return nil
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f, r.w = f, f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopenWriter) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		r.f.Close()
		r.f = nil
		r.w = io.Discard
	}
}

// logLevel maps a Python logging level to slog's.
func logLevel(py int) slog.Level {
	switch {
	case py <= 10:
		return slog.LevelDebug
	case py <= 20:
		return slog.LevelInfo
	case py <= 30:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func newServeLogger(c *cli.Context, cfg *mkinstance.ServerConfig) (*slog.Logger, *reopenWriter, error) {
	out := &reopenWriter{w: c.App.ErrWriter}
	level := slog.LevelInfo
	if cfg.EventLog != nil {
		level = logLevel(cfg.EventLog.Level)
		for _, h := range cfg.EventLog.Handlers {
			if h.Kind != "logfile" {
				continue
			}
			switch h.Path {
			case "STDERR", "":
			case "STDOUT":
				out.w = c.App.Writer
			default:
				out.path = h.Path
				if err := out.Reopen(); err != nil {
					return nil, nil, err
				}
			}
			break
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(out, opts)
	if c.Bool("log-json") {
		h = slog.NewJSONHandler(out, opts)
	}
	return slog.New(h), out, nil
}

// openStorage builds the zeowire.Storage of one configuration section.
func openStorage(sc mkinstance.StorageConfig, serverRO bool, log *slog.Logger) (zeowire.Storage, bool, error) {
	warn := func(msg string) { log.Warn(msg, "storage", sc.Name) }
	switch sc.Kind {
	case mkinstance.KindFileStorage:
		return openFileStorage(sc.FileStorage, "", serverRO, warn)
	case mkinstance.KindBlobStorage:
		if sc.Blob.Base.Kind != mkinstance.KindFileStorage {
			return nil, false, fmt.Errorf("<blobstorage %s>: only a <filestorage> base is supported, not <%s>", sc.Name, sc.Blob.Base.Kind)
		}
		return openFileStorage(sc.Blob.Base.FileStorage, sc.Blob.BlobDir, serverRO, warn)
	case mkinstance.KindMappingStorage:
		return memstore.NewMapping(sc.Mapping.Name), false, nil
	}
	return nil, false, fmt.Errorf("<%s %s>: storage type not supported by serve (filestorage, blobstorage over filestorage, mappingstorage)", sc.Kind, sc.Name)
}

func openFileStorage(fc *mkinstance.FileStorageConfig, blobDir string, serverRO bool, warn func(string)) (zeowire.Storage, bool, error) {
	if blobDir == "" {
		blobDir = fc.BlobDir
	}
	ro := fc.ReadOnly
	if fc.Create && !ro {
		// FileStorage create=true: start over with an empty file.
		if err := os.Remove(fc.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, false, err
		}
	}
	st, err := fsstore.Open(fc.Path, fsstore.Options{ReadOnly: ro, BlobDir: blobDir, PackGC: fc.PackGC, PackKeepOld: fc.PackKeepOld, Quota: fc.Quota, Warn: warn})
	if err != nil {
		return nil, false, err
	}
	return st, ro || serverRO, nil
}

func storageClass(st zeowire.Storage) string {
	if _, ok := st.(*fsstore.Store); ok {
		return "FileStorage"
	}
	return "MappingStorage"
}

// runServe runs the server for cfg until SIGTERM/SIGINT.
func runServe(c *cli.Context, cfg *mkinstance.ServerConfig) error { return serveWith(c, cfg, nil) }

// serveWith is runServe; listening, if not nil, runs once the server
// listens (the default instance's instructions).
func serveWith(c *cli.Context, cfg *mkinstance.ServerConfig, listening func(addr string)) error {
	// serveConfig applies -t and --pid-file only on top of -C; do it here
	// for -a/-f too (idempotent with -C).
	if p := c.String("pid-file"); p != "" {
		cfg.ZEO.PidFilename = p
	}
	if c.IsSet("timeout") {
		cfg.ZEO.TransactionTimeout = time.Duration(c.Float64("timeout") * float64(time.Second))
	}
	log, logOut, err := newServeLogger(c, cfg)
	if err != nil {
		return exitWith(ExitFailure, "serve: log file: %v", err)
	}
	defer logOut.Close()
	pid := os.Getpid()

	if err := mkinstance.CheckAddressFree(cfg.ZEO.Address); err != nil {
		return usageError("serve: %v", err)
	}

	srv := &zeowire.Server{
		Storages:                 map[string]zeowire.Storage{},
		Logger:                   log,
		ReadOnly:                 cfg.ZEO.ReadOnly,
		ReadOnlyStorages:         map[string]bool{},
		ClientConflictResolution: true,
		InvalidationQueueSize:    cfg.ZEO.InvalidationQueueSize,
		TransactionTimeout:       cfg.ZEO.TransactionTimeout,
	}
	if err := setServerLimits(c, srv); err != nil {
		return err
	}
	if cfg.ZEO.InvalidationAge != nil {
		srv.InvalidationAge = time.Duration(*cfg.ZEO.InvalidationAge * float64(time.Second))
	}
	if cfg.ZEO.Msgpack != nil {
		srv.Msgpack = *cfg.ZEO.Msgpack
	} else {
		srv.Msgpack = os.Getenv("ZEO_MSGPACK") != ""
	}
	if ssl := cfg.ZEO.SSL; ssl != nil {
		if ssl.PasswordFunction != "" {
			return usageError("serve: <ssl> password-function is not supported (use an unencrypted key file)")
		}
		if srv.TLSConfig, err = zeowire.ServerTLSConfig(ssl.Certificate, ssl.Key, ssl.Authenticate); err != nil {
			return usageError("serve: <ssl>: %v", err)
		}
	}

	// Pid file (not for a read-only server, as runzeo).
	pidFile := ""
	if !cfg.ZEO.ReadOnly {
		pidFile = cfg.PidFile(os.Getenv("INSTANCE_HOME"))
	}
	if pidFile != "" {
		os.Remove(pidFile)
		if err := renameio.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			log.Error(fmt.Sprintf("(%d) cannot create PID file '%s'", pid, pidFile), "err", err)
			pidFile = ""
		} else {
			log.Info(fmt.Sprintf("(%d) created PID file '%s'", pid, pidFile))
		}
	}
	removePid := func() {
		if pidFile != "" {
			os.Remove(pidFile)
			log.Info(fmt.Sprintf("(%d) removed PID file '%s'", pid, pidFile))
		}
	}

	var opened []string
	closeAll := func() {
		for _, name := range opened {
			log.Info(fmt.Sprintf("closing storage '%s'", name))
			if err := srv.Storages[name].Close(); err != nil {
				log.Error("closing storage", "storage", name, "err", err)
			}
		}
	}
	var summary []string
	for _, sc := range cfg.Storages {
		st, ro, err := openStorage(sc, cfg.ZEO.ReadOnly, log)
		if err != nil {
			closeAll()
			removePid()
			return exitWith(ExitFailure, "serve: storage %s: %v", sc.Name, err)
		}
		log.Info(fmt.Sprintf("(%d) opening storage '%s' using %s", pid, sc.Name, storageClass(st)))
		srv.Storages[sc.Name] = st
		srv.Order = append(srv.Order, sc.Name)
		opened = append(opened, sc.Name)
		if ro {
			srv.ReadOnlyStorages[sc.Name] = true
		}
		mode := "RW"
		if ro {
			mode = "RO"
		}
		summary = append(summary, fmt.Sprintf("%s:%s:%s", sc.Name, mode, st.Info().Name))
	}
	defer removePid()
	defer closeAll()

	ln, err := zeowire.Listen(cfg.ZEO.Address.ListenAddr())
	if err != nil {
		return exitWith(ExitFailure, "serve: %v", err)
	}
	mode := "RW"
	if cfg.ZEO.ReadOnly {
		mode = "RO"
	}
	log.Info(fmt.Sprintf("StorageServer created %s with storages: %s", mode, strings.Join(summary, ", ")))

	var metricsSrv *http.Server
	if addr := c.String("metrics"); addr != "" {
		mln, err := net.Listen("tcp", addr)
		if err != nil {
			ln.Close()
			return exitWith(ExitFailure, "serve: --metrics: %v", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			writeMetrics(w, srv)
		})
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go metricsSrv.Serve(mln)
		log.Info("metrics on http://" + mln.Addr().String() + "/metrics")
	}

	stopc := make(chan string, 1)
	stop := func(why string) {
		select {
		case stopc <- why:
		default:
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer func() { signal.Stop(sigs); close(sigs) }()
	go func() {
		for sig := range sigs {
			switch sig {
			case syscall.SIGHUP, syscall.SIGUSR2:
				if err := logOut.Reopen(); err != nil {
					log.Error("reopening the log file", "err", err)
				} else {
					log.Info(fmt.Sprintf("(%d) Log files reopened successfully", pid))
				}
			case syscall.SIGTERM:
				stop("SIGTERM")
			case syscall.SIGINT:
				stop("SIGINT")
			}
		}
	}()

	if p := c.String("cpu-profile"); p != "" {
		pf, err := os.Create(p)
		if err != nil {
			ln.Close()
			return exitWith(ExitFailure, "serve: --cpu-profile: %v", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			ln.Close()
			return exitWith(ExitFailure, "serve: --cpu-profile: %v", err)
		}
		defer func() { pprof.StopCPUProfile(); pf.Close() }()
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if listening != nil {
		listening(ln.Addr().String())
	}
	if serveStarted != nil {
		serveStarted(ln.Addr(), func() { stop("SIGTERM") })
	}
	var serveErr error
	select {
	case why := <-stopc:
		log.Info(fmt.Sprintf("(%d) terminated by %s", pid, why))
	case serveErr = <-served:
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown", "err", err)
	}
	if metricsSrv != nil {
		metricsSrv.Shutdown(ctx)
	}
	if cfg.ZEO.Address.IsUnix() {
		os.Remove(cfg.ZEO.Address.Unix)
	}
	if serveErr != nil && !errors.Is(serveErr, zeowire.ErrServerClosed) {
		return exitWith(ExitFailure, "serve: %v", serveErr)
	}
	return nil
}

// writeMetrics renders the server's counters in the Prometheus text format.
func writeMetrics(w io.Writer, srv *zeowire.Server) {
	stats := srv.Stats()
	type metric struct {
		name, kind, help string
		value            func(zeowire.StorageStats) float64
	}
	metrics := []metric{
		{"zodbctl_zeo_loads_total", "counter", "loadBefore calls.", func(s zeowire.StorageStats) float64 { return float64(s.Loads) }},
		{"zodbctl_zeo_stores_total", "counter", "Objects stored (storea, restorea, deleteObject).", func(s zeowire.StorageStats) float64 { return float64(s.Stores) }},
		{"zodbctl_zeo_commits_total", "counter", "Committed transactions.", func(s zeowire.StorageStats) float64 { return float64(s.Commits) }},
		{"zodbctl_zeo_aborts_total", "counter", "Aborted transactions.", func(s zeowire.StorageStats) float64 { return float64(s.Aborts) }},
		{"zodbctl_zeo_conflicts_total", "counter", "Conflicts reported to clients.", func(s zeowire.StorageStats) float64 { return float64(s.Conflicts) }},
		{"zodbctl_zeo_connected_clients", "gauge", "Clients registered with the storage.", func(s zeowire.StorageStats) float64 { return float64(s.Connections) }},
		{"zodbctl_zeo_active_transactions", "gauge", "Transactions begun and not finished.", func(s zeowire.StorageStats) float64 { return float64(s.ActiveTxns) }},
		{"zodbctl_zeo_commit_lock_waiting", "gauge", "Voters waiting for the commit lock.", func(s zeowire.StorageStats) float64 { return float64(s.Waiting) }},
		{"zodbctl_zeo_commit_lock_wait_seconds_total", "counter", "Time voters spent waiting for the commit lock.", func(s zeowire.StorageStats) float64 { return s.LockWait.Seconds() }},
	}
	for _, m := range metrics {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", m.name, m.help, m.name, m.kind)
		for _, s := range stats {
			fmt.Fprintf(w, "%s{storage=%q} %s\n", m.name, s.Name, strconv.FormatFloat(m.value(s), 'g', -1, 64))
		}
	}
	fmt.Fprintf(w, "# HELP zodbctl_zeo_storage_size_bytes Size of the storage (Data.fs length).\n# TYPE zodbctl_zeo_storage_size_bytes gauge\n")
	for _, s := range stats {
		if st := srv.Storages[s.Name]; st != nil {
			fmt.Fprintf(w, "zodbctl_zeo_storage_size_bytes{storage=%q} %d\n", s.Name, st.Info().Size)
		}
	}
	fmt.Fprintf(w, "# HELP zodbctl_zeo_storage_objects Objects in the storage.\n# TYPE zodbctl_zeo_storage_objects gauge\n")
	for _, s := range stats {
		if st := srv.Storages[s.Name]; st != nil {
			fmt.Fprintf(w, "zodbctl_zeo_storage_objects{storage=%q} %d\n", s.Name, st.Info().Length)
		}
	}
	in, out := srv.Traffic()
	fmt.Fprintf(w, "# HELP zodbctl_zeo_received_bytes_total Bytes received from clients.\n# TYPE zodbctl_zeo_received_bytes_total counter\nzodbctl_zeo_received_bytes_total %d\n", in)
	fmt.Fprintf(w, "# HELP zodbctl_zeo_sent_bytes_total Bytes sent to clients.\n# TYPE zodbctl_zeo_sent_bytes_total counter\nzodbctl_zeo_sent_bytes_total %d\n", out)
}

// setServerLimits copies the per-connection limit flags to srv.
func setServerLimits(c *cli.Context, srv *zeowire.Server) error {
	frame := c.Int64("max-frame-size")
	if frame < 64 || frame > 1<<32-1 {
		return usageError("serve: --max-frame-size %d: want 64 to %d bytes", frame, int64(1<<32-1))
	}
	srv.MaxFrameSize = uint32(frame)
	for _, f := range []string{"max-pending-calls", "outbound-queue"} {
		if c.Int(f) < 1 {
			return usageError("serve: --%s %d: want at least 1", f, c.Int(f))
		}
	}
	srv.MaxPendingCalls = c.Int("max-pending-calls")
	srv.OutboundQueue = c.Int("outbound-queue")
	// The Server reads 0 as "default" and negative as "no limit".
	noLimitIfZero := func(d time.Duration) time.Duration {
		if d <= 0 {
			return -1
		}
		return d
	}
	srv.RegisterTimeout = noLimitIfZero(c.Duration("register-timeout"))
	srv.WriteTimeout = noLimitIfZero(c.Duration("write-timeout"))
	return nil
}
