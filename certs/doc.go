// Package certs owns the HTTPS port's certificates: those of `tls: files`
// services, read from their PEM files and read again when the files
// change, and those of `tls: auto` services, obtained and renewed over
// ACME (github.com/caddyserver/certmagic) and kept in CertDir.
//
// Invariants: a handshake never waits for an order: a name without a
// certificate yet fails its handshake (the log says why) while other names
// are served. A certificate in CertDir is never ordered again (certmagic
// loads it first; its storage locks keep two processes from ordering the
// same name). A certificate file that changes into a bad pair (one that
// --check rejects: unreadable, a key not its own, or, by the check
// --check makes, internal/leafcheck, not in force or not covering every
// name of its service) is logged and the pair in use kept. One Manager maintains certificates
// at a time: Stop ends its renewals before the process that replaces it
// starts its own.
package certs
