// Package h2raw is a client of HTTP/2 written by hand, frame by frame
// (RFC 9113), for tests and the bench: it sends what Go's client will not
// (odd requests), shows the frames as the server sent them, and holds a
// connection for the cost of its tls.Conn, so that thousands can be held.
//
// Invariant: it keeps no state of a connection between calls; the caller
// numbers the streams (RunBurst, which opens the connection's, numbers its
// own) and owns the net.Conn. A header block is read only as far as
// its representations' shapes (RFC 7541 §6): no Huffman decoding, no
// dynamic table.
package h2raw
