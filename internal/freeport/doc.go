// Package freeport finds ports on 127.0.0.1 for the processes a test or a
// suite starts to listen on.
//
// Guarantee: the ports it names lie in [Low, EphemeralLow()), below the
// kernel's ephemeral range (ip_local_port_range, 32768 up by default). A
// port in that range can be taken at any moment as the local end of an
// outgoing connection (a proxy's to an instance, a load client's), and a
// process told to listen there would then fail.
package freeport
