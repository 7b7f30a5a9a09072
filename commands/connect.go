package commands

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/mkinstance"
	"github.com/zodbctl/zodbctl/zeowire"
	"github.com/zodbctl/zodbctl/zeowire/client"
)

// Exit statuses of `zodbctl connect` (documented in its help). `check`
// keeps the monitoring convention instead: 0 healthy, 1 unhealthy, 2
// unreachable.
const (
	exitConnUnreachable = 3 // no server answered (within --wait)
	exitConnRefused     = 4 // the server refused the registration: unknown storage, read-only
	exitConnNoObject    = 5 // no such object, or no revision at that tid
	exitConnLost        = 6 // the connection broke mid-command and no server took over
)

func init() {
	register(&cli.Command{
		Name:      "connect",
		Usage:     "talk to a ZEO server: info, status, check, reads, transactions, pack, watch, copy",
		ArgsUsage: "SUBCOMMAND [ARGS]",
		Description: `zodbctl connect -s ADDR[,ADDR…] [-S NAME] SUBCOMMAND [ARGS]
zodbctl connect -C zope.conf [--db NAME] SUBCOMMAND [ARGS]

ADDR is host:port, [v6]:port, port (on 127.0.0.1) or a Unix socket path,
or zeopack's host:port:NAME (the storage name); -s may also come from
$ZODBCTL_SERVER. With several addresses the client tries them in order and
fails over to the next one, also when a server goes away in the middle of a
command (reads are repeated, an iteration resumes after the last
transaction it printed). With --wait DURATION it keeps
retrying, with backoff, while no server answers, and says on stderr what it
waits for. -C takes the servers, storage and TLS settings of the <zeoclient>
or <clientstorage> of a <zodb NAME> (or <zodb_db NAME>) section.

Every subcommand takes --json (JSON Lines; oids and tids are 16 hex
digits, times RFC 3339 UTC).

Exit status:
  0  success
  1  the operation failed (an error from the server, a malformed reply)
  2  bad arguments
  3  no server answered (within --wait)
  4  the server refused the registration (unknown storage, read-only)
  5  no such object, or no revision of it at that tid
  6  the connection broke mid-command and no other server took over
  check: 0 healthy, 1 unhealthy, 2 unreachable (Nagios OK/WARNING/CRITICAL).

Errors are one line on stderr naming the address and what failed.`,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "server", Aliases: []string{"s"}, EnvVars: []string{"ZODBCTL_SERVER"},
				Usage: "server address(es), comma-separated, tried in order"},
			&cli.StringFlag{Name: "storage", Aliases: []string{"S"}, Value: "1", Usage: "storage name"},
			&cli.StringFlag{Name: "config", Aliases: []string{"C"}, Usage: "zope.conf (or a ZODB client configuration) to read the server from"},
			&cli.StringFlag{Name: "db", Usage: "the <zodb NAME> section of -C (default: the first)"},
			&cli.DurationFlag{Name: "wait", Usage: "keep retrying this long while no server answers"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "connection and handshake timeout per address"},
			&cli.DurationFlag{Name: "call-timeout", Value: 5 * time.Minute, Usage: "give up on a call the server does not answer in this time (not pack; 0: wait forever)"},
			&cli.StringFlag{Name: "tls-cert", Usage: "client certificate (PEM) for TLS"},
			&cli.StringFlag{Name: "tls-key", Usage: "client key (PEM)"},
			&cli.StringFlag{Name: "tls-ca", Usage: "CA file or directory to verify the server (turns TLS on)"},
			&cli.StringFlag{Name: "tls-server-name", Usage: "host name to check in the server certificate"},
		},
		Subcommands: connectSubcommands(),
	})
}

// jsonFlag makes each subcommand's own --json flag (cli flags keep state).
func jsonFlag() cli.Flag { return &cli.BoolFlag{Name: "json", Usage: "JSON Lines output"} }

func connectSubcommands() []*cli.Command {
	return []*cli.Command{
		{Name: "info", Usage: "storage name, size, length, last tid, interfaces, read-only, protocol",
			Flags: []cli.Flag{jsonFlag()}, Action: runConnectInfo},
		{Name: "status", Usage: "server_status of the storage, or with --ruok the status probe of every storage (no registration)",
			Flags:  []cli.Flag{jsonFlag(), &cli.BoolFlag{Name: "ruok", Usage: "use the ruok probe instead of registering"}},
			Action: runConnectStatus},
		{Name: "check", Usage: "health check like zeoup: connect, load the root, commit (zeoup's counter)",
			Description: `Connects, loads the root object and, unless --nowrite, does what zeoup
does: increments root['monitor']['zeoup'].value (a ZODB.tests.MinPO.MinPO in
a PersistentMapping, both created when missing; an empty storage first gets
its root, as ZODB creates it) and commits. An object is only rewritten when
zodbctl re-pickles it to its exact bytes; otherwise the root is stored again
unchanged (--json: "mode": "rewrite-root"). A conflict counts as healthy:
the server took part in a commit. Prints "Elapsed time: S" on success; exit
0 healthy, 1 unhealthy (one line on stdout saying why), 2 unreachable.`,
			Flags:  []cli.Flag{jsonFlag(), &cli.BoolFlag{Name: "nowrite", Usage: "only read the root object"}},
			Action: runConnectCheck},
		{Name: "last-tid", Usage: "the last committed tid", Flags: []cli.Flag{jsonFlag()}, Action: runConnectLastTid},
		{Name: "load", Usage: "the raw record of OID (current, or as of --at TID)", ArgsUsage: "OID",
			Description: `Writes the record's bytes (two pickles: class and state) to stdout, or
with --decode the decoded class and state, or with --json the record in
base64 with its tid.`,
			Flags: []cli.Flag{jsonFlag(), &cli.StringFlag{Name: "at", Usage: "the revision current at this tid"},
				&cli.BoolFlag{Name: "decode", Usage: "decode the pickles for humans"}},
			Action: runConnectLoad},
		{Name: "history", Usage: "revisions of OID, newest first", ArgsUsage: "OID",
			Flags:  []cli.Flag{jsonFlag(), &cli.IntFlag{Name: "n", Value: 10, Usage: "at most N revisions"}},
			Action: runConnectHistory},
		{Name: "cat", Usage: "the object state of OID decoded for humans: class, attributes, references", ArgsUsage: "OID",
			Flags:  []cli.Flag{jsonFlag(), &cli.StringFlag{Name: "at", Usage: "the revision current at this tid"}},
			Action: runConnectCat},
		{Name: "transactions", Usage: "iterate transactions like fsdump (without file offsets)",
			Description: `Text: fsdump's lines less what a ZEO iterator does not carry (offsets,
transaction sizes); "bp=" names the transaction a backpointer refers to.
--json: one object per transaction with fsdump --json's field names: tid,
time, status, user, description (user_base64/description_base64 when not
UTF-8), extension, records: [{oid, class, size, serial, back_tid, deleted}].`,
			Flags: []cli.Flag{jsonFlag(), &cli.StringFlag{Name: "since", Usage: "first tid (inclusive)"},
				&cli.StringFlag{Name: "until", Usage: "last tid (inclusive)"}},
			Action: runConnectTransactions},
		{Name: "pack", Usage: "pack the storage (zeopack), reporting how long it took",
			Description: `Packs to now, or to --time (HH[:MM[:SS]] local time today as zeopack
takes it, YYYY-MM-DD[THH:MM[:SS]] local time, RFC 3339, or a 16-digit tid),
minus --days days. Waits for the end of the pack.`,
			Flags: []cli.Flag{jsonFlag(), &cli.Float64Flag{Name: "days", Aliases: []string{"d"}, Usage: "pack objects older than N days"},
				&cli.StringFlag{Name: "time", Aliases: []string{"t"}, Usage: "pack time"}},
			Action: runConnectPack},
		{Name: "watch", Usage: "print invalidations as they arrive, one line each, until interrupted",
			Description: `One line per committed transaction: tid, time, oids (--json: {tid, time,
oids}). When the connection is lost it fails over to the next server (or
waits for one, up to --wait, 1 minute by default) and prints, marked
"missed while disconnected", what was committed meanwhile. SIGINT or
SIGTERM end it with exit status 0.`,
			Flags:  []cli.Flag{jsonFlag(), &cli.IntFlag{Name: "count", Usage: "stop after N invalidations"}},
			Action: runConnectWatch},
		{Name: "copy", Usage: "copy all transactions into a new local Data.fs (verified, written aside, renamed)", ArgsUsage: "DEST.fs",
			Description: `Fetches the transactions (from --since on) and writes them as FileStorage's
copyTransactionsFrom does: same tids, statuses, metadata and records, undo
records as backpointers. The file is written beside DEST.fs, fsynced,
checked like fstest, then renamed: DEST.fs is either the complete copy or
not there. With --blob-dir the blob files come along (sendBlob) into a new
bushy blob directory. A lost connection resumes on the next server after
the last transaction copied. In msgpack mode an extension's lists come back
as tuples (msgpack has no difference), so such a transaction pickles a few
bytes differently from the original.`,
			Flags: []cli.Flag{jsonFlag(), &cli.StringFlag{Name: "since", Usage: "copy transactions from this tid on"},
				&cli.StringFlag{Name: "blob-dir", Usage: "copy the blobs into this new directory (bushy layout)"},
				&cli.BoolFlag{Name: "force", Usage: "replace an existing DEST.fs (and --blob-dir)"}},
			Action: runConnectCopy},
	}
}

// connectOptions builds the client options from the connect flags.
func connectOptions(c *cli.Context) (client.Options, error) {
	var opts client.Options
	var addrs []string
	for _, v := range c.StringSlice("server") {
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
	}
	opts.Storage = c.String("storage")
	var ssl *mkinstance.SSLConfig
	if conf := c.String("config"); conf != "" {
		cfg, err := mkinstance.LoadClientConfig(conf, mkinstance.Options{})
		if err != nil {
			return opts, exitWith(ExitFailure, "zodbctl connect: %v", err)
		}
		db, err := pickDatabase(cfg, c.String("db"))
		if err != nil {
			return opts, exitWith(ExitFailure, "zodbctl connect: %s: %v", conf, err)
		}
		cs := db.Storage.Client
		if len(addrs) == 0 {
			for _, a := range cs.Servers {
				addrs = append(addrs, a.DialAddr())
			}
		}
		if !c.IsSet("storage") {
			opts.Storage = cs.Storage
		}
		if !c.IsSet("wait") && cs.WaitTimeout > 0 {
			opts.Wait = cs.WaitTimeout
		}
		ssl = cs.SSL
	} else if c.String("db") != "" {
		return opts, usageError("connect: --db needs -C")
	}
	if len(addrs) == 0 {
		return opts, usageError("connect: no server: use -s ADDR[,ADDR…], $ZODBCTL_SERVER or -C zope.conf")
	}
	nameFromAddr := ""
	for i, a := range addrs {
		// zeopack's HOST:PORT:NAME names the storage too.
		if m := addrWithName.FindStringSubmatch(a); m != nil {
			if nameFromAddr != "" && nameFromAddr != m[2] {
				return opts, usageError("connect: the servers name different storages (%q, %q); use -S", nameFromAddr, m[2])
			}
			a, nameFromAddr = m[1], m[2]
		} else if i > 0 && nameFromAddr != "" {
			return opts, usageError("connect: %q names no storage but another server does; use -S", a)
		}
		pa, err := mkinstance.ParseAddress(a, false)
		if err != nil || (!pa.IsUnix() && pa.Port < 0) {
			if err == nil {
				err = errors.New("no port")
			}
			return opts, usageError("connect: invalid server address %q: %v", a, err)
		}
		opts.Addrs = append(opts.Addrs, pa.DialAddr())
	}
	if nameFromAddr != "" && !c.IsSet("storage") {
		opts.Storage = nameFromAddr
	}
	if c.IsSet("wait") {
		opts.Wait = c.Duration("wait")
	}
	opts.DialTimeout = c.Duration("timeout")
	opts.CallTimeout = c.Duration("call-timeout")
	if c.String("tls-ca") != "" || c.String("tls-cert") != "" {
		ssl = &mkinstance.SSLConfig{Certificate: c.String("tls-cert"), Key: c.String("tls-key"),
			Authenticate: c.String("tls-ca"), ServerHostname: c.String("tls-server-name"), CheckHostname: true}
	}
	if ssl != nil {
		key := ssl.Key
		if key == "" {
			key = ssl.Certificate
		}
		cert := ssl.Certificate
		if cert == "" {
			key = ""
		}
		tc, err := zeowire.ClientTLSConfig(cert, key, ssl.Authenticate, ssl.ServerHostname, ssl.CheckHostname)
		if err != nil {
			return opts, exitWith(ExitFailure, "zodbctl connect: %v", err)
		}
		opts.TLS = tc
	}
	errw := c.App.ErrWriter
	opts.OnWait = func(msg string) { fmt.Fprintf(errw, "zodbctl connect: %s\n", msg) }
	return opts, nil
}

// addrWithName matches zeopack's server form HOST:PORT:NAME (also
// [v6]:PORT:NAME).
var addrWithName = regexp.MustCompile(`^((?:\[[^\]]*\]|[^:/\[\]]*):[0-9]+):([^:/]+)$`)

func pickDatabase(cfg *mkinstance.ClientConfig, name string) (*mkinstance.DatabaseConfig, error) {
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		if name != "" && db.Name != name && db.DatabaseName != name {
			continue
		}
		if db.Storage.Client == nil {
			return nil, fmt.Errorf("database %q does not use a ZEO client storage (<zeoclient> or <clientstorage>)", db.DatabaseName)
		}
		return db, nil
	}
	if name == "" {
		return nil, errors.New("no <zodb> section")
	}
	return nil, fmt.Errorf("no <zodb %s> section", name)
}

// connectErr turns a client error into the one-line message and exit status.
func connectErr(err error) error {
	var ue *client.UnreachableError
	var re *client.RegisterError
	var le *client.ConnectionLostError
	var pk *zeowire.POSKeyError
	code := ExitFailure
	switch {
	case errors.As(err, &le): // before ue: it may wrap the failed reconnection
		code = exitConnLost
	case errors.As(err, &ue):
		code = exitConnUnreachable
	case errors.As(err, &re):
		code = exitConnRefused
	case errors.As(err, &pk), errors.Is(err, errNoRevision):
		code = exitConnNoObject
	}
	return exitWith(code, "zodbctl connect: %s", oneLine(err.Error()))
}

var errNoRevision = errors.New("no revision at or before that tid")

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", " ") }

// dial connects with the connect flags (ro: register read-only).
func dial(c *cli.Context, ro bool, tweak func(*client.Options)) (*client.Client, error) {
	opts, err := connectOptions(c)
	if err != nil {
		return nil, err
	}
	opts.ReadOnly = ro
	if tweak != nil {
		tweak(&opts)
	}
	cl, err := client.Connect(c.Context, opts)
	if err != nil {
		return nil, connectErr(err)
	}
	return cl, nil
}

func noArgs(c *cli.Context) error {
	pos, err := positionals(c)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("connect %s: unexpected argument %q", c.Command.Name, pos[0])
	}
	return nil
}

// positionals returns the arguments that are not flags, applying the flags
// written after them (urfave/cli stops parsing flags at the first
// argument, and `load OID --at TID` is the natural order).
func positionals(c *cli.Context) ([]string, error) {
	var pos []string
	args := c.Args().Slice()
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var flag cli.Flag
		for _, f := range c.Command.Flags {
			for _, n := range f.Names() {
				if n == name {
					flag = f
				}
			}
		}
		if flag == nil {
			return nil, usageError("connect %s: flag provided but not defined: %s", c.Command.Name, a)
		}
		if _, isBool := flag.(*cli.BoolFlag); isBool {
			if !hasValue {
				value = "true"
			}
		} else if !hasValue {
			if i+1 >= len(args) {
				return nil, usageError("connect %s: flag needs an argument: %s", c.Command.Name, a)
			}
			i++
			value = args[i]
		}
		if err := c.Set(name, value); err != nil {
			return nil, usageError("connect %s: invalid value %q for flag %s: %v", c.Command.Name, value, a, err)
		}
	}
	return pos, nil
}

// parseTidArg reads a 16-hex-digit tid (a 0x prefix is allowed).
func parseTidArg(flag, s string) (zeowire.Tid, error) {
	v, err := parseHex64(s)
	if err != nil {
		return 0, usageError("connect: %s: invalid tid %q (16 hex digits)", flag, s)
	}
	return zeowire.Tid(v), nil
}

// parseOidArg reads an oid: hex (0x prefix optional; up to 16 digits).
func parseOidArg(s string) (zeowire.Oid, error) {
	v, err := parseHex64(s)
	if err != nil {
		return 0, usageError("connect: invalid oid %q (hex, up to 16 digits)", s)
	}
	return zeowire.Oid(v), nil
}

func parseHex64(s string) (uint64, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	if h == "" || len(h) > 16 {
		return 0, errors.New("bad length")
	}
	var v uint64
	for _, ch := range h {
		var d uint64
		switch {
		case ch >= '0' && ch <= '9':
			d = uint64(ch - '0')
		case ch >= 'a' && ch <= 'f':
			d = uint64(ch-'a') + 10
		case ch >= 'A' && ch <= 'F':
			d = uint64(ch-'A') + 10
		default:
			return 0, errors.New("not hex")
		}
		v = v<<4 | d
	}
	return v, nil
}

// writeOut writes s to the command's stdout.
func writeOut(w io.Writer, s string) error {
	_, err := io.WriteString(w, s)
	return err
}
