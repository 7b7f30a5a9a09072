package mkinstance

// ClientConfig is what a client reads from a zope.conf or a ZODB client
// configuration: the databases and their storages (zeo-config.md §8).
type ClientConfig struct {
	File      string
	Databases []DatabaseConfig // the first is the main database
}

// DatabaseConfig is a <zodb NAME> section (or Zope's <zodb_db NAME>, whose
// Zope-only keys are skipped).
type DatabaseConfig struct {
	Name                     string // section name ("" if unnamed)
	Section                  string // "zodb" or "zodb_db"
	CacheSize                int    // objects, default 5000
	CacheSizeBytes           int64
	LargeRecordSize          int64 // default 16MB
	PoolSize                 int   // default 7
	DatabaseName             string
	AllowImplicitCrossRefs   *bool
	HistoricalPoolSize       int // default 3
	HistoricalCacheSize      int // default 1000
	HistoricalCacheSizeBytes int64
	Storage                  StorageConfig
	Line                     int
}

// LoadClientConfig reads the <zodb>/<zodb_db> sections of a client
// configuration such as zope.conf. Other top-level keys and sections (Zope's
// own) and unknown %import packages are ignored; inside the databases the
// ZODB schema is enforced. Errors are *ConfigError.
func LoadClientConfig(path string, opts Options) (*ClientConfig, error) {
	top := []childInfo{{typ: "zodb", max: -1}, {typ: "zodb_db", max: -1}}
	n, _, err := load(path, opts, top, true)
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	cfg := &ClientConfig{File: path}
	for _, c := range n.children {
		db := DatabaseConfig{Name: c.sec.Name, Section: c.info.typ, Line: c.sec.Line}
		if c.info.typ == "zodb" {
			db.CacheSize = d.integer(c, "cache-size", 5000)
			db.CacheSizeBytes = d.byteSize(c, "cache-size-bytes", 0)
			db.LargeRecordSize = d.byteSize(c, "large-record-size", 16<<20)
			db.PoolSize = d.integer(c, "pool-size", 7)
			db.HistoricalPoolSize = d.integer(c, "historical-pool-size", 3)
			db.HistoricalCacheSize = d.integer(c, "historical-cache-size", 1000)
			db.HistoricalCacheSizeBytes = d.byteSize(c, "historical-cache-size-bytes", 0)
			d.interval(c, "pool-timeout", 0)
			d.interval(c, "historical-timeout", 0)
			d.dottedName(c, "class-factory")
			db.AllowImplicitCrossRefs = d.optBool(c, "allow-implicit-cross-references")
			def := c.sec.Name
			if def == "" {
				def = "unnamed"
			}
			db.DatabaseName = d.str(c, "database-name", def)
		} else {
			db.DatabaseName = c.sec.Name
		}
		storages := c.childrenOf(absStorage)
		for _, s := range storages {
			db.Storage = d.storage(s)
			if db.Storage.Unnamed {
				db.Storage.Name = ""
			}
		}
		if len(storages) == 0 {
			if len(c.unknown) == 0 {
				return nil, &ConfigError{File: c.sec.File, Line: c.sec.EndLine,
					Msg: "no values for section type 'zodb.storage'; 1 required"}
			}
			// A storage from a Python package zodbctl does not implement
			// (e.g. <temporarystorage>): Kind names it, no settings.
			u := c.unknown[0]
			db.Storage = StorageConfig{Name: u.Name, Unnamed: u.Name == "", Kind: u.Type, File: u.File, Line: u.Line}
		}
		cfg.Databases = append(cfg.Databases, db)
	}
	if d.err != nil {
		return nil, d.err
	}
	return cfg, nil
}
