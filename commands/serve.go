package commands

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/zodbctl/zodbctl/mkinstance"
)

// runServer runs the ZEO server for a loaded configuration until it is told
// to stop; nil until the server exists. The ZEO server's command file sets
// it from its init (runServer = …) and may add its own flags to serveFlags
// the same way; serve --check never calls it.
var runServer func(c *cli.Context, cfg *mkinstance.ServerConfig) error

// serveFlags are serve's flags; other files may append to it in init.
var serveFlags = []cli.Flag{
	&cli.StringFlag{Name: "configure", Aliases: []string{"C"}, Usage: "the zeo.conf to load", TakesFile: true},
	&cli.StringSliceFlag{Name: "X", Usage: "`NAME=VALUE` predefines $NAME (wins over the file's %define); " +
		"SECTION/KEY=VALUE overrides a key as runzeo's -X does (e.g. zeo/address=8200)"},
	&cli.StringSliceFlag{Name: "define", Usage: "`NAME=VALUE` predefines $NAME (like -X NAME=VALUE)"},
	&cli.BoolFlag{Name: "check", Usage: "load and validate the configuration, print the resolved settings, open nothing"},
}

func init() {
	register(&cli.Command{
		Name:      "serve",
		Usage:     "run a ZEO server (runzeo); --check validates a zeo.conf",
		ArgsUsage: " ",
		Description: `serve -C zeo.conf loads the configuration as runzeo does. $INSTANCE is
predefined as the instance home (the parent of the config's etc/ folder, else
its folder), so a hand-written zeo.conf using $INSTANCE loads; -X INSTANCE=/path
or --define INSTANCE=/path overrides it (an extension: ZConfig has no predefined
names).

--check prints one setting per line and exits 0, or prints the error and exits 2:
  config PATH
  address ADDRESS          (*:PORT = all interfaces; a path = Unix socket)
  read-only true|false
  storage NAME KIND path=… read-only=… blob-dir=…   (one line per storage)`,
		Flags:  serveFlags,
		Action: serveAction,
	})
}

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
	path := c.String("configure")
	if path == "" {
		return usageError("serve: no configuration; use -C zeo.conf")
	}
	opts, err := loadOptions(c)
	if err != nil {
		return usageError("serve: %v", err)
	}
	cfg, err := mkinstance.LoadServerConfig(path, opts)
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

// renderServerConfig prints the settings serve --check reports.
func renderServerConfig(w io.Writer, cfg *mkinstance.ServerConfig) {
	fmt.Fprintf(w, "config %s\n", cfg.File)
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
