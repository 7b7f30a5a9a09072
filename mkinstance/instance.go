package mkinstance

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/google/renameio/v2"
)

// DefaultAddress is mkzeoinstance's address when none is given.
const DefaultAddress = "9999"

// DefaultBlobDir is what a bare -b writes (and creates as HOME/var/blobs).
const DefaultBlobDir = "$INSTANCE/var/blobs"

// ErrBadAddress: the address argument is neither [HOST]:PORT nor a number;
// mkzeoinstance answers with its usage text.
var ErrBadAddress = errors.New("address must be [HOST:]PORT")

// StorageSpec is one --storage NAME=PATH of mkzeoinstance.
type StorageSpec struct {
	Name string
	Path string // ZConfig text; a relative path is taken under $INSTANCE/var
}

// InstanceOptions describe the instance Create makes.
type InstanceOptions struct {
	Home       string        // instance home; made absolute
	Address    string        // as normalized by NormalizeAddress
	BlobDir    string        // "" no blobs; DefaultBlobDir for a bare -b
	Storages   []StorageSpec // nil: one <filestorage 1> with $INSTANCE/var/Data.fs
	Force      bool          // overwrite existing files that differ
	Systemd    bool          // also write etc/zeo.service
	Executable string        // the zodbctl binary the bin/ scripts run
	// Report receives each progress line (mkzeoinstance's stdout lines).
	Report func(line string)
}

// NormalizeAddress applies mkzeoinstance's address rule: text with a colon
// is kept verbatim, digits are written as a number (leading zeros dropped),
// anything else is ErrBadAddress.
func NormalizeAddress(s string) (string, error) {
	if strings.ContainsAny(s, "\n\r") {
		return "", ErrBadAddress
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s, checkPortRange(s[i+1:])
	}
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return "", ErrBadAddress
	}
	if err := checkPortRange(s); err != nil {
		return "", err
	}
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t, nil
	}
	return "0", nil
}

// checkPortRange refuses a numeric port above 65535, which Python's
// mkzeoinstance writes anyway and ZConfig then reads as a host name, so
// that the server fails only at start ("lookup 99999: no such host").
func checkPortRange(port string) error {
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return nil
	}
	if _, err := portNumber(port); err != nil { // ZConfig's own check
		return fmt.Errorf("port %s is out of range (0-65535)", port)
	}
	return nil
}

var storageNameRE = regexp.MustCompile(`^[^\s()<>/]+$`)

// ParseStorageSpec parses NAME=PATH for --storage.
func ParseStorageSpec(s string) (StorageSpec, error) {
	name, path, ok := strings.Cut(s, "=")
	switch {
	case !ok || name == "" || path == "":
		return StorageSpec{}, fmt.Errorf("--storage %s: want NAME=PATH", pyRepr(s))
	case !storageNameRE.MatchString(name):
		return StorageSpec{}, fmt.Errorf("--storage %s: a storage name has no white space, parentheses, <, > or /", pyRepr(s))
	case strings.ContainsAny(path, "\n\r"):
		return StorageSpec{}, fmt.Errorf("--storage %s: the path has a line break", pyRepr(s))
	}
	return StorageSpec{Name: name, Path: path}, nil
}

func (o *InstanceOptions) check() error {
	if strings.ContainsAny(o.Home, "\n\r") {
		return fmt.Errorf("%s: an instance home with a line break cannot be written into zeo.conf", pyRepr(o.Home))
	}
	if strings.ContainsAny(o.BlobDir, "\n\r") {
		return fmt.Errorf("blob directory %s has a line break", pyRepr(o.BlobDir))
	}
	seen := map[string]bool{}
	for _, s := range o.Storages {
		key := strings.ToLower(s.Name) // ZConfig lower-cases section names
		if seen[key] {
			return fmt.Errorf("--storage: duplicate storage name %s", pyRepr(s.Name))
		}
		seen[key] = true
	}
	return nil
}

// ZEOConf renders etc/zeo.conf: mkzeoinstance's template line for line,
// except that the <runner> keys python and zdrun (which would name a Python
// interpreter and zdaemon's zdrun.py) are comments, and --storage writes
// one <filestorage NAME> section per database.
func ZEOConf(o InstanceOptions) string {
	var b strings.Builder
	b.WriteString("# ZEO configuration file\n\n")
	fmt.Fprintf(&b, "%%define INSTANCE %s\n\n", strings.ReplaceAll(o.Home, "$", "$$"))
	fmt.Fprintf(&b, "<zeo>\n  address %s\n  read-only false\n  invalidation-queue-size 100\n", o.Address)
	b.WriteString("  # pid-filename $INSTANCE/var/ZEO.pid\n  # monitor-address PORT\n  # transaction-timeout SECONDS\n</zeo>\n\n")
	specs := o.Storages
	if len(specs) == 0 {
		specs = []StorageSpec{{Name: "1", Path: "$INSTANCE/var/Data.fs"}}
	}
	for _, s := range specs {
		fmt.Fprintf(&b, "<filestorage %s>\n  path %s\n  ", s.Name, storagePath(s.Path))
		if blob := o.blobDir(s.Name); blob != "" {
			b.WriteString("blob-dir " + blob)
		}
		b.WriteString("\n</filestorage>\n\n")
	}
	b.WriteString(`<eventlog>
  level info
  <logfile>
    path $INSTANCE/log/zeo.log
  </logfile>
</eventlog>

<runner>
  program $INSTANCE/bin/runzeo
  socket-name $INSTANCE/var/zeo.zdsock
  daemon true
  forever false
  backoff-limit 10
  exit-codes 0, 2
  directory $INSTANCE
  default-to-interactive true
  # user zope
  # python: not used, bin/runzeo runs zodbctl
  # zdrun: not used, zodbctl zeoctl supervises the server

  # This logfile should match the one in the zeo.conf file.
  # It is used by zdctl's logtail command, zdrun/zdctl doesn't write it.
  logfile $INSTANCE/log/zeo.log
</runner>
`)
	return b.String()
}

func storagePath(p string) string {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "$") || strings.HasPrefix(p, "~") {
		return p
	}
	return "$INSTANCE/var/" + p
}

// blobDir is the blob-dir value for a storage: as given for a single
// storage; with several, each gets its own subfolder NAME (two storages
// must never share a blob directory).
func (o *InstanceOptions) blobDir(name string) string {
	if o.BlobDir == "" || len(o.Storages) <= 1 {
		return o.BlobDir
	}
	return strings.TrimRight(o.BlobDir, "/") + "/" + name
}

// shellQuoted escapes s for the inside of a double-quoted sh string.
func shellQuoted(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "$", `\$`, "`", "\\`").Replace(s)
}

// RunzeoScript renders bin/runzeo. Differences from mkzeoinstance's, line by
// line: PYTHON="…" becomes ZODBCTL="<zodbctl binary>"; the ZODB3_HOME and
// PYTHONPATH lines are gone (export keeps INSTANCE_HOME only); the last line
// execs "$ZODBCTL" serve instead of "$PYTHON" -m ZEO.runzeo.
func RunzeoScript(o InstanceOptions) string {
	return script(o, "# ZEO instance start script\n", "serve")
}

// ZeoctlScript renders bin/zeoctl, with the same differences as
// RunzeoScript; the last line execs "$ZODBCTL" zeoctl.
func ZeoctlScript(o InstanceOptions) string {
	return script(o, `# ZEO instance control script

# The following two lines are for chkconfig.  On Red Hat Linux (and
# some other systems), you can copy or symlink this script into
# /etc/rc.d/init.d/ and then use chkconfig(8) to automatically start
# ZEO at boot time.

# chkconfig: 345 90 10
# description: start a ZEO server
`, "zeoctl")
}

func script(o InstanceOptions, header, command string) string {
	home := shellQuoted(o.Home)
	return "#!/bin/sh\n" + header + "\n" +
		"ZODBCTL=\"" + shellQuoted(o.Executable) + "\"\n" +
		"INSTANCE_HOME=\"" + home + "\"\n\n" +
		"CONFIG_FILE=\"" + home + "/etc/zeo.conf\"\n\n" +
		"export INSTANCE_HOME\n\n" +
		"exec \"$ZODBCTL\" " + command + " -C \"$CONFIG_FILE\" ${1+\"$@\"}\n"
}

// SystemdUnit renders etc/zeo.service, a unit running bin/runzeo in the
// foreground (systemd supervises; exit status 2, a configuration error, is
// not retried).
func SystemdUnit(o InstanceOptions) string {
	esc := func(s string) string { return strings.ReplaceAll(s, "%", "%%") }
	q := func(s string) string {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(esc(s)) + `"`
	}
	return fmt.Sprintf(`[Unit]
Description=ZEO server %s
After=network.target

[Service]
Type=simple
WorkingDirectory=%s
ExecStart=%s
KillSignal=SIGTERM
TimeoutStopSec=300
Restart=on-failure
RestartPreventExitStatus=2

[Install]
WantedBy=multi-user.target
`, esc(o.Home), esc(o.Home), q(filepath.Join(o.Home, "bin", "runzeo")))
}

// Create makes the instance as mkzeoinstance does (zeo-admin-tools.md §1.2):
// folders, etc/zeo.conf, bin/zeoctl, bin/runzeo (and etc/zeo.service with
// Systemd), reporting each step. Existing folders are kept; an existing
// non-empty file that differs is left alone with a warning unless Force.
// Files are written aside, synced and renamed into place.
func Create(o InstanceOptions) error {
	abs, err := filepath.Abs(o.Home)
	if err != nil {
		return err
	}
	o.Home = abs
	if err := o.check(); err != nil {
		return err
	}
	if o.Report == nil {
		o.Report = func(string) {}
	}
	c := creator{o: o, umask: umask()}
	for _, d := range []string{"", "etc", "var", "log", "bin"} {
		if err := c.mkdirs(filepath.Join(o.Home, d)); err != nil {
			return err
		}
	}
	if o.BlobDir == DefaultBlobDir {
		if err := c.mkdirs(filepath.Join(o.Home, "var", "blobs")); err != nil {
			return err
		}
		if len(o.Storages) > 1 {
			for _, s := range o.Storages {
				if err := c.mkdirs(filepath.Join(o.Home, "var", "blobs", s.Name)); err != nil {
					return err
				}
			}
		}
	}
	if err := c.makeFile(filepath.Join(o.Home, "etc", "zeo.conf"), ZEOConf(o), false); err != nil {
		return err
	}
	if err := c.makeFile(filepath.Join(o.Home, "bin", "zeoctl"), ZeoctlScript(o), true); err != nil {
		return err
	}
	if err := c.makeFile(filepath.Join(o.Home, "bin", "runzeo"), RunzeoScript(o), true); err != nil {
		return err
	}
	if o.Systemd {
		if err := c.makeFile(filepath.Join(o.Home, "etc", "zeo.service"), SystemdUnit(o), false); err != nil {
			return err
		}
	}
	return nil
}

type creator struct {
	o     InstanceOptions
	umask fs.FileMode
}

// mkdirs creates path and its missing parents, top first, one message each.
func (c *creator) mkdirs(path string) error {
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return nil
		}
		return fmt.Errorf("%s exists and is not a directory", path)
	}
	if parent := filepath.Dir(path); parent != path {
		if st, err := os.Stat(parent); err != nil || !st.IsDir() {
			if err := c.mkdirs(parent); err != nil {
				return err
			}
		}
	}
	if err := os.Mkdir(path, 0o777); err != nil {
		return err
	}
	c.o.Report("Created directory " + path)
	return nil
}

func (c *creator) makeFile(path, data string, executable bool) error {
	old, err := os.ReadFile(path)
	switch {
	case err == nil:
		if oldText := bytes.TrimSpace(old); len(oldText) > 0 && !c.o.Force {
			if string(oldText) != strings.TrimSpace(data) {
				c.o.Report("Warning: not overwriting existing file " + path)
			}
			return c.chmodX(path, executable)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if err := renameio.WriteFile(path, []byte(data), 0o666); err != nil {
		return err
	}
	c.o.Report("Wrote file " + path)
	return c.chmodX(path, executable)
}

// chmodX gives a script mode 0777 minus the umask, reporting the change as
// mkzeoinstance does (only when the mode differed).
func (c *creator) chmodX(path string, executable bool) error {
	if !executable {
		return nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	mode := 0o777 &^ c.umask
	if st.Mode().Perm() == mode {
		return nil
	}
	if err := os.Chmod(path, mode); err != nil {
		return err
	}
	c.o.Report(fmt.Sprintf("Changed mode for %s to %o", path, mode))
	return nil
}

// umask reads the process umask without changing it (Linux /proc), falling
// back to setting and restoring it.
func umask() fs.FileMode {
	if f, err := os.Open("/proc/self/status"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return fs.FileMode(n)
				}
			}
		}
	}
	m := syscall.Umask(0o22)
	syscall.Umask(m)
	return fs.FileMode(m)
}
