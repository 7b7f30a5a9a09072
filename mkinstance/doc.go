// Package mkinstance reads ZEO and ZODB configuration files (ZConfig syntax:
// zeo.conf, zope.conf), creates ZEO instance folders as mkzeoinstance does,
// and controls a running instance (start, stop, status).
//
// API for the rest of zodbctl:
//
//   - LoadServerConfig(path, Options) → *ServerConfig: the ZEO server schema
//     with runzeo's own checks; FlagConfig/FileStorages for runzeo's -a/-f.
//     ServerConfig.PidFile gives runzeo's pid file rule; Address has
//     Network/ListenAddr/DialAddr for net.Listen and net.Dial, and
//     CheckAddressFree is runzeo's "already in use" check.
//   - LoadClientConfig(path, Options) → *ClientConfig: the <zodb>/<zodb_db>
//     databases of a client configuration (zope.conf), for `connect`.
//   - Create(InstanceOptions): mkzeoinstance; ZEOConf, RunzeoScript,
//     ZeoctlScript and SystemdUnit render the files.
//   - NewController(cfg, argv): Start/Stop/Status/Signal/Foreground of the
//     server process, zdctl's job without a supervisor process.
//
// The reader is hand-written rather than a generic ZConfig: Python schema
// components cannot be loaded from Go, so the schemas of ZEO, ZODB, zdaemon
// and the ZConfig logger are built in (schema.go), and %import accepts only
// the packages whose components are built in. Parsing gives a tree of
// Sections, the schema check gives nodes, and small typed builders convert
// values (with each key's line for messages). Messages are ZConfig's texts,
// with the key, line and file URL appended in parentheses on the same line,
// so errors stay one line (*ConfigError).
//
// Extensions over ZConfig, both off the reference path: $INSTANCE is
// predefined as the instance home (the parent of the config file's etc/
// folder, else its folder) so a hand-written zeo.conf using $INSTANCE loads
// (a %define INSTANCE in the file replaces that default without error); and
// Options.Defines (`-X NAME=VALUE`) predefine names that win over the file's
// own %define of the same name. Known differences: the zeoctl schema's
// demands (a <runner>, named storages) are not enforced, since zodbctl's
// zeoctl needs neither. A repeated %define is compared as ZConfig compares
// it (the stored, substituted value against the new raw text), so
// `%define B $A` twice is "cannot redefine" there and here.
//
// Nothing here prints or exits: Create reports progress through a callback,
// and errors are returned.
package mkinstance
