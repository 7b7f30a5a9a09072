package mkinstance

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func mustRE(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// Address is a ZConfig socket address (zeo-config.md §2.1): a Unix-domain
// socket path, or a TCP host and port.
type Address struct {
	Unix string // socket path for a Unix-domain address, "" for TCP
	Host string // lower-cased; "" means all interfaces (binding addresses only)
	Port int    // -1: no port given (a server then binds an ephemeral port)
}

// IsUnix reports whether a is a Unix-domain socket address.
func (a Address) IsUnix() bool { return a.Unix != "" }

// IPv6 reports whether the host is written as an IPv6 address, as ZConfig
// decides the address family.
func (a Address) IPv6() bool { return !a.IsUnix() && strings.Contains(a.Host, ":") }

// Network is "unix" or "tcp", for net.Listen and net.Dial.
func (a Address) Network() string {
	if a.IsUnix() {
		return "unix"
	}
	return "tcp"
}

// ListenAddr is the address to pass to net.Listen: the path, or host:port
// with port 0 when none was given.
func (a Address) ListenAddr() string {
	if a.IsUnix() {
		return a.Unix
	}
	return net.JoinHostPort(a.Host, strconv.Itoa(max(a.Port, 0)))
}

// DialAddr is the address a client on this machine connects to: an
// all-interfaces binding is reached through the loopback address.
func (a Address) DialAddr() string {
	if a.IsUnix() {
		return a.Unix
	}
	host := a.Host
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(max(a.Port, 0)))
}

// String renders the address for people: the socket path, host:port,
// [v6]:port, or *:port for all interfaces.
func (a Address) String() string {
	if a.IsUnix() {
		return a.Unix
	}
	host := a.Host
	if host == "" {
		host = "*"
	}
	port := "-"
	if a.Port >= 0 {
		port = strconv.Itoa(a.Port)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// PyRepr renders the address as runzeo's messages show it: the socket
// path, or a Python tuple such as ('127.0.0.1', 8800) (port None if unset).
func (a Address) PyRepr() string {
	if a.IsUnix() {
		return a.Unix
	}
	port := "None"
	if a.Port >= 0 {
		port = strconv.Itoa(a.Port)
	}
	return "(" + pyRepr(a.Host) + ", " + port + ")"
}

// ParseAddress converts ZConfig's socket-binding-address (binding true) or
// socket-connection-address text, with ZConfig's quirks: a bare out-of-range
// number is a host name, an unbracketed IPv6 address has no port.
func ParseAddress(s string, binding bool) (Address, error) {
	if strings.Contains(s, "/") {
		return Address{Unix: s, Port: -1}, nil
	}
	defHost := "127.0.0.1"
	if binding {
		defHost = ""
	}
	a := Address{Port: -1}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, p := s[:i], s[i+1:]
		switch {
		case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
			host = host[1 : len(host)-1]
		case strings.Contains(host, ":"):
			host, p = s, ""
		}
		if p != "" {
			port, err := portNumber(p)
			if err != nil {
				return Address{}, err
			}
			a.Port = port
		}
		a.Host = strings.ToLower(host)
	} else if port, err := portNumber(s); err == nil {
		a.Port = port
	} else {
		if len(pySplit(s)) != 1 {
			return Address{}, errors.New("not a valid host name: " + pyRepr(s))
		}
		a.Host = strings.ToLower(s)
	}
	if a.Host == "" {
		a.Host = defHost
	}
	return a, nil
}

func portNumber(s string) (int, error) {
	n, err := pyInt(s)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, fmt.Errorf("%d is below lower bound (0)", n)
	}
	if n > 0xffff {
		return 0, fmt.Errorf("%d is above upper bound (65535)", n)
	}
	return int(n), nil
}

// pyInt converts like Python's int(): surrounding white space, a sign and
// underscores between digits are allowed; the error text is Python's.
func pyInt(s string) (int64, error) {
	t := pyStrip(s)
	digits := strings.TrimLeft(t, "+-")
	ok := len(t)-len(digits) <= 1 && digits != "" && digits[0] != '_' && digits[len(digits)-1] != '_' &&
		!strings.Contains(digits, "__")
	if ok {
		clean := strings.ReplaceAll(t, "_", "")
		if n, err := strconv.ParseInt(clean, 10, 64); err == nil {
			return n, nil
		} else if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("integer %s out of range", pyRepr(s))
		}
	}
	return 0, fmt.Errorf("invalid literal for int() with base 10: %s", pyRepr(s))
}

func pyFloat(s string) (float64, error) {
	t := strings.ReplaceAll(pyStrip(s), "_", "")
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || strings.HasPrefix(strings.ToLower(t), "0x") {
		return 0, fmt.Errorf("could not convert string to float: %s", pyRepr(s))
	}
	return f, nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "yes", "true", "on":
		return true, nil
	case "no", "false", "off":
		return false, nil
	}
	return false, errors.New("not a valid boolean value: " + pyRepr(s))
}

// suffixMultiplier implements ZConfig's byte-size and time-interval: an
// integer with an optional case-insensitive suffix of fixed length.
func suffixMultiplier(s string, suffixLen int, mult map[string]int64) (int64, error) {
	v := strings.ToLower(s)
	if len(v) >= suffixLen {
		if m, ok := mult[v[len(v)-suffixLen:]]; ok {
			n, err := pyInt(v[:len(v)-suffixLen])
			if err != nil {
				return 0, err
			}
			if n > math.MaxInt64/m || n < math.MinInt64/m {
				return 0, fmt.Errorf("value %s out of range", pyRepr(s))
			}
			return n * m, nil
		}
	}
	return pyInt(v)
}

var (
	byteSizeSuffixes = map[string]int64{"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}
	intervalSuffixes = map[string]int64{"s": 1, "m": 60, "h": 3600, "d": 86400}
)

// ParseByteSize converts ZConfig's byte-size ("20MB", "2 kb", "4096").
func ParseByteSize(s string) (int64, error) { return suffixMultiplier(s, 2, byteSizeSuffixes) }

// ParseTimeInterval converts ZConfig's time-interval ("5m", "30", "2h").
func ParseTimeInterval(s string) (time.Duration, error) {
	n, err := suffixMultiplier(s, 1, intervalSuffixes)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		return 0, fmt.Errorf("value %s out of range", pyRepr(s))
	}
	return time.Duration(n) * time.Second, nil
}

func expandUser(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return home + p[1:]
		}
	}
	return p
}

// existingDirpath: the directory part of the path must exist.
func existingDirpath(v string) (string, error) {
	nv := expandUser(v)
	dir := filepath.Dir(nv)
	if !strings.ContainsRune(nv, '/') {
		return nv, nil
	}
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return nv, nil
	}
	return "", fmt.Errorf("The directory named as part of the path %s does not exist.", v)
}

func existingPath(v string) (string, error) {
	nv := expandUser(v)
	if _, err := os.Stat(nv); err == nil {
		return nv, nil
	}
	return "", fmt.Errorf("%s is not an existing path", v)
}

// existingParentDirectory: zdaemon's check for <runner> directory.
func existingParentDirectory(v string) (string, error) {
	nv := expandUser(v)
	parent := filepath.Dir(filepath.Clean(nv))
	if st, err := os.Stat(parent); err == nil && st.IsDir() {
		return nv, nil
	}
	return "", fmt.Errorf("%s is not an existing directory", parent)
}

// existingParentDirpath: zdaemon's check for socket-name: the directory
// holding the file's directory must exist.
func existingParentDirpath(v string) (string, error) {
	nv := expandUser(v)
	dir := filepath.Dir(nv)
	if !strings.ContainsRune(nv, '/') {
		return nv, nil
	}
	parent := filepath.Dir(dir)
	if st, err := os.Stat(parent); err == nil && st.IsDir() {
		return nv, nil
	}
	return "", fmt.Errorf("The directory named as part of the path %s does not exist.", v)
}

var dottedNameRE = mustRE(`^[_a-zA-Z][_a-zA-Z0-9]*(?:\.[_a-zA-Z][_a-zA-Z0-9]*)*$`)

// LogLevel converts a ZConfig logging level name or number (0–50).
func LogLevel(s string) (int, error) {
	levels := map[string]int{"critical": 50, "fatal": 50, "error": 40, "warn": 30, "warning": 30,
		"info": 20, "blather": 15, "debug": 10, "trace": 5, "all": 1, "notset": 0}
	if n, ok := levels[strings.ToLower(s)]; ok {
		return n, nil
	}
	n, err := pyInt(s)
	if err != nil {
		return 0, fmt.Errorf("logging level must be a name or an integer between 0 and 50: %s", pyRepr(s))
	}
	if n < 0 || n > 50 {
		return 0, fmt.Errorf("log levels must be integers from 0 to 50: %s", pyRepr(s))
	}
	return int(n), nil
}
