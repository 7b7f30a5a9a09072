// Package mkinstance reads ZEO and ZODB configuration files (ZConfig syntax:
// zeo.conf, zope.conf), creates ZEO instance folders as mkzeoinstance does,
// and controls a running instance (start, stop, status).
//
// Configuration: LoadServerConfig gives a typed ServerConfig for `zodbctl
// serve`; LoadClientConfig gives the databases of a client configuration for
// `zodbctl connect`. The reader is hand-written rather than generic ZConfig:
// Python schema components cannot be loaded from Go, so the schemas of ZEO,
// ZODB, zdaemon and the ZConfig logger are built in (schema.go), and %import
// accepts only the packages whose components are built in. Messages are
// ZConfig's texts, with the key, line and file URL appended in parentheses on
// the same line, so errors stay one line.
//
// Extensions over ZConfig, both off the reference path: $INSTANCE is
// predefined as the instance home (the parent of the config file's etc/
// folder, else its folder) so a hand-written zeo.conf using $INSTANCE loads
// (a %define INSTANCE in the file replaces that default without error);
// and Options.Defines (`-X NAME=VALUE`) predefine names that win over the
// file's own %define of the same name.
//
// Nothing here prints or exits: Create reports progress through a callback,
// and errors are returned (*ConfigError for configuration faults).
package mkinstance
