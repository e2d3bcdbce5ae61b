package config

import (
	"net/netip"
	"time"
)

// Config is smoothserve.yaml with its service files, loaded, defaulted and
// validated. Every path in it is absolute.
type Config struct {
	Path  string         // absolute path of smoothserve.yaml
	Dir   string         // its folder: relative paths resolve against it
	Lines map[string]int // line of each key present in Path, for errors found later

	ProxyAddr      string         // ProxyAddr; default "127.0.0.1"
	ProxyPort      int            // ProxyPort; 0 when unset (then every service must set port)
	SubConfigDir   string         // SubConfigDir; default Dir/services
	CommandPort    int            // CommandPort; accepted for the seed, opens nothing
	LogDir         string         // LogDir; default Dir/logs
	ControlSocket  string         // ControlSocket; default Dir/smoothserve.sock
	PidFile        string         // PidFile; default Dir/smoothserve.pid
	StateDir       string         // StateDir; default Dir
	TrustedProxies []netip.Prefix // TrustedProxies: CIDRs (a bare IP is a /32 or /128)

	HTTPSPort     int    // HTTPSPort; 0 when unset: no HTTPS. TLS is served there, at ProxyAddr; never in ProxyPorts
	ACMEDirectory string // ACMEDirectory; default DefaultACMEDirectory (Let's Encrypt); an https:// URL
	ACMEEmail     string // ACMEEmail; "" when unset: the ACME account has no contact
	ACMECARoot    string // ACMECARoot; absolute; "" when unset: PEM roots trusted, beside the system's, for the ACME server
	CertDir       string // CertDir; default StateDir/certs; not created by Load (the daemon makes it, mode 0700)

	HeaderTimeout       time.Duration // HeaderTimeout; default 10s: a request head must arrive within it
	IdleTimeout         time.Duration // IdleTimeout; default 75s: keep-alive wait, and the longest a client may stall mid-response
	MaxHeaderBytes      int           // MaxHeaderBytes; default 32768: a larger request head gets 431
	MaxHeaderFields     int           // MaxHeaderFields; default 100: a request with more header fields gets 431
	BodyTimeout         time.Duration // BodyTimeout; default 60s: the longest a client may stall while sending a request body
	UpgradeTimeout      time.Duration // UpgradeTimeout; default 30s
	UpgradeDrainTimeout time.Duration // UpgradeDrainTimeout; default 60s

	AccessLog       string      // AccessLog; absolute; default LogDir/access.log; "" means off (written "off")
	AccessLogFormat string      // AccessLogFormat: AccessLogCombined (default) or AccessLogJSON
	AdminAddr       string      // AdminAddr: host:port of the admin listener (metrics, status page); "" when unset: none
	AdminAuth       []AdminUser // AdminAuth: who may use the admin listener; required when AdminAddr is not loopback

	DrainDelay time.Duration // DrainDelay; default 5s: after smoothtool drain, how long requests are served as before
	AgentPort  int           // AgentPort: HAProxy agent-check port on ProxyAddr; 0 when unset: none

	Services []*Service // every service file, sorted by Name (disabled ones too)
	Warnings []string   // things an operator should know that are not errors
}

// Service is one file of SubConfigDir.
type Service struct {
	File  string         // absolute path of the service file
	Lines map[string]int // line of each key present in File, for errors found later

	Name                  string
	ServerNames           []string // lower-cased, trimmed; "*.example.com" wildcards; empty: the port's default service
	DefaultServer         bool     // also takes the hosts no service of its port claims, as nginx's default_server
	ServerIP              string   // default "127.0.0.1"
	Port                  int      // default Config.ProxyPort
	StartInstancePort     int
	InstanceCount         int
	ExecutablePath        string            // absolute
	WorkingDir            string            // absolute; default the executable's folder
	Args                  []string          // default ["-port={port}"]; {port} is filled in per instance
	Env                   map[string]string // added to smoothserve's environment
	Enabled               bool              // default true
	AutoRestart           bool
	DelayRunningTime      time.Duration // default 0
	DelayUpdateTime       time.Duration // default 2s
	WatchFiles            []string      // absolute (relative ones resolve against the executable's folder)
	WatchIgnore           []string      // globs; default ["*.swp", "*~", "*.tmp", ".git/"]
	HealthCheck           string        // HTTP path; empty: a TCP connect
	StartTimeout          time.Duration // default 30s
	StopTimeout           time.Duration // default 30s
	KillTimeout           time.Duration // default 10s: from SIGTERM to SIGKILL
	ResponseHeaderTimeout time.Duration // default 60s: from the request sent to its answer's head; 0: none
	MaxBodySize           int64         // bytes; default 0: no limit
	RestartStrategy       string        // "surge" (default) or "in_place"
	TLS                   string        // TLSOff (default), TLSAuto or TLSFiles
	TLSCert               string        // with TLSFiles: absolute path of the PEM certificate (chain), leaf first
	TLSKey                string        // with TLSFiles: absolute path of the PEM private key
	HTTPSRedirect         bool          // plain HTTP requests are redirected to HTTPS; default true when TLS is not TLSOff
	Compress              bool          // compress responses for clients that accept it; default false

	// AccessLog is the service's own access log: an absolute path, or
	// AccessLogOff (written "off"): none for it; "" (unset): the main
	// Config.AccessLog.
	AccessLog string
	// Health checks after start, with HealthCheck set and
	// HealthCheckInterval above 0: an instance failing HealthCheckFails in
	// a row leaves rotation until one passes, and is replaced once it has
	// been failing for UnhealthyRestartAfter.
	HealthCheckInterval   time.Duration // default 10s; 0: no checks after start
	HealthCheckFails      int           // default 3; at least 1
	UnhealthyRestartAfter time.Duration // default 60s; 0: never replaced for failing
}

// AdminUser is one entry of AdminAuth, written "user:bcrypt-hash".
type AdminUser struct {
	User string // not empty, no spaces
	Hash string // a bcrypt hash (bcrypt.Cost accepts it)
}

// Values of AccessLogFormat.
const (
	AccessLogCombined = "combined" // the NCSA combined format, as nginx's and Apache's default
	AccessLogJSON     = "json"     // one JSON object per line
)

// AccessLogOff, as Service.AccessLog, turns the service's access log off;
// as AccessLog in smoothserve.yaml it is stored as "".
const AccessLogOff = "off"

// Strategy values of restart_strategy.
const (
	StrategySurge   = "surge"
	StrategyInPlace = "in_place"
)

// Values of tls.
const (
	TLSOff   = "off"   // plain HTTP only
	TLSAuto  = "auto"  // certificates from the ACME server at ACMEDirectory
	TLSFiles = "files" // the certificate and key in tls_cert and tls_key
)

// DefaultACMEDirectory is ACMEDirectory when unset: Let's Encrypt's
// production directory.
const DefaultACMEDirectory = "https://acme-v02.api.letsencrypt.org/directory"
