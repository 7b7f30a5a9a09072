package commands

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/mkinstance"
)

// runServer runs the ZEO server for a loaded configuration until it is told
// to stop; nil until the server exists. The ZEO server's command file sets
// it from its init (runServer = …) and may add flags (-a, -f, -t, --pid-file)
// with serveCommand.Flags = append(serveCommand.Flags, …) there too: both
// are package variables, initialized before any init runs. serve --check
// never calls it.
var runServer func(c *cli.Context, cfg *mkinstance.ServerConfig) error

var serveFlags = []cli.Flag{
	&cli.StringFlag{Name: "configure", Aliases: []string{"C"}, Usage: "the zeo.conf to load", TakesFile: true},
	&cli.StringSliceFlag{Name: "X", Usage: "`NAME=VALUE` predefines $NAME (wins over the file's %define); " +
		"SECTION/KEY=VALUE overrides a key as runzeo's -X does (e.g. zeo/address=8200)"},
	&cli.StringSliceFlag{Name: "define", Usage: "`NAME=VALUE` predefines $NAME (like -X NAME=VALUE)"},
	&cli.BoolFlag{Name: "check", Usage: "load and validate the configuration, print the resolved settings, open nothing"},
	&cli.StringFlag{Name: "address", Aliases: []string{"a"}, Usage: "`ADDRESS` to listen on (overrides <zeo> address)"},
	&cli.StringSliceFlag{Name: "filename", Aliases: []string{"f"}, Usage: "serve the FileStorage `PATH` (repeatable, named 1, 2, …; replaces the configured storages)", TakesFile: true},
	&cli.Float64Flag{Name: "timeout", Aliases: []string{"t"}, Usage: "transaction timeout in `SECONDS` (overrides <zeo> transaction-timeout)"},
	&cli.StringFlag{Name: "pid-file", Usage: "`PATH` of the pid file (overrides <zeo> pid-filename)", TakesFile: true},
}

var serveCommand = &cli.Command{
	Name:      "serve",
	Usage:     "run a ZEO server (runzeo); --check validates a zeo.conf",
	ArgsUsage: " ",
	Description: `serve -C zeo.conf loads the configuration as runzeo does. $INSTANCE is
predefined as the instance home (the parent of the config's etc/ folder, else
its folder), so a hand-written zeo.conf using $INSTANCE loads; -X INSTANCE=/path
or --define INSTANCE=/path overrides it (an extension: ZConfig has no predefined
names).

--check prints one setting per line and exits 0, or prints the error and exits 2:
  config PATH              (- when built from -a and -f)
  address ADDRESS          (*:PORT = all interfaces; a path = Unix socket)
  read-only true|false
  storage NAME KIND path=… read-only=… blob-dir=…   (one line per storage)`,
	Flags:  serveFlags,
	Action: serveAction,
}

func init() { register(serveCommand) }

// loadOptions turns -X and --define into loader options.
func loadOptions(c *cli.Context) (mkinstance.Options, error) {
	var o mkinstance.Options
	add := func(arg string, overrides bool) error {
		name, value, ok := strings.Cut(arg, "=")
		if !ok || name == "" {
			return fmt.Errorf("-X %s: want NAME=VALUE", arg)
		}
		if overrides && strings.Contains(name, "/") {
			o.Overrides = append(o.Overrides, mkinstance.Override{Path: name, Value: value})
			return nil
		}
		if o.Defines == nil {
			o.Defines = map[string]string{}
		}
		o.Defines[name] = value
		return nil
	}
	for _, x := range c.StringSlice("X") {
		if err := add(x, true); err != nil {
			return o, err
		}
	}
	for _, x := range c.StringSlice("define") {
		if err := add(x, false); err != nil {
			return o, err
		}
	}
	return o, nil
}

func serveAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError("serve: unexpected argument %q", c.Args().First())
	}
	if !c.Bool("check") && runServer == nil {
		return usageError("serve: the ZEO server is not built yet")
	}
	cfg, err := serveConfig(c)
	if err != nil {
		return usageError("serve: %v", err)
	}
	if !c.Bool("check") {
		return runServer(c, cfg)
	}
	w := bufio.NewWriter(c.App.Writer)
	renderServerConfig(w, cfg)
	return w.Flush()
}

// serveConfig loads the configuration as runzeo does: -C zeo.conf, or -a
// and -f alone; -a, -f, -t and --pid-file override the file.
func serveConfig(c *cli.Context) (*mkinstance.ServerConfig, error) {
	files := c.StringSlice("filename")
	path := c.String("configure")
	if path == "" {
		return mkinstance.FlagConfig(c.String("address"), files)
	}
	opts, err := loadOptions(c)
	if err != nil {
		return nil, err
	}
	cfg, err := mkinstance.LoadServerConfig(path, opts)
	if err != nil {
		return nil, err
	}
	if a := c.String("address"); a != "" {
		if cfg.ZEO.Address, err = mkinstance.ParseAddress(a, true); err != nil {
			return nil, fmt.Errorf("-a: %w", err)
		}
	}
	if len(files) > 0 {
		if cfg.Storages, err = mkinstance.FileStorages(files); err != nil {
			return nil, err
		}
	}
	if c.IsSet("timeout") {
		cfg.ZEO.TransactionTimeout = time.Duration(c.Float64("timeout") * float64(time.Second))
	}
	if p := c.String("pid-file"); p != "" {
		cfg.ZEO.PidFilename = p
	}
	return cfg, nil
}

// renderServerConfig prints the settings serve --check reports.
func renderServerConfig(w io.Writer, cfg *mkinstance.ServerConfig) {
	file := cfg.File
	if file == "" {
		file = "-" // from -a and -f
	}
	fmt.Fprintf(w, "config %s\n", file)
	addr := cfg.ZEO.Address.String()
	if cfg.ZEO.Address.IsUnix() {
		addr = "unix:" + addr
	}
	fmt.Fprintf(w, "address %s\n", addr)
	fmt.Fprintf(w, "read-only %t\n", cfg.ZEO.ReadOnly)
	for _, s := range cfg.Storages {
		fmt.Fprintf(w, "storage %s %s\n", s.Name, storageSummary(s, cfg.ZEO.ReadOnly))
	}
}

func storageSummary(s mkinstance.StorageConfig, serverRO bool) string {
	path, blobs, ro := "-", "-", serverRO
	switch s.Kind {
	case mkinstance.KindFileStorage:
		path, ro = s.FileStorage.Path, ro || s.FileStorage.ReadOnly
		if s.FileStorage.BlobDir != "" {
			blobs = s.FileStorage.BlobDir
		}
	case mkinstance.KindBlobStorage:
		blobs = s.Blob.BlobDir
		base := storageSummary(s.Blob.Base, serverRO)
		return fmt.Sprintf("%s base=(%s %s) blob-dir=%s", s.Kind, s.Blob.Base.Kind, base[len(s.Blob.Base.Kind)+1:], blobs)
	case mkinstance.KindZEOClient, mkinstance.KindClientStorage:
		var servers []string
		for _, a := range s.Client.Servers {
			servers = append(servers, a.String())
		}
		path, ro = strings.Join(servers, ","), ro || s.Client.ReadOnly
		if s.Client.BlobDir != "" {
			blobs = s.Client.BlobDir
		}
		return fmt.Sprintf("%s server=%s storage=%s read-only=%t blob-dir=%s", s.Kind, path, s.Client.Storage, ro, blobs)
	}
	return fmt.Sprintf("%s path=%s read-only=%t blob-dir=%s", s.Kind, path, ro, blobs)
}
