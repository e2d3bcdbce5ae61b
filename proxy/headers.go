package proxy

// hdr names the header fields the proxy acts on; every other field is
// hdrOther and is forwarded as it came (if valid). The one table of names is
// headerID: request parsing, response parsing and forwarding all read the
// id it stored in each field.
type hdr uint8

const (
	hdrOther hdr = iota
	hdrHost
	hdrContentLength
	hdrTransferEncoding
	hdrConnection
	hdrUpgrade
	hdrExpect
	hdrXForwardedFor
	hdrXForwardedHost
	hdrXForwardedProto
	hdrXRequestID
	hdrTE
	hdrTrailer
	hdrKeepAlive
	hdrProxyConnection
	hdrProxyAuthenticate
	hdrProxyAuthorization
	hdrHTTP2Settings
	hdrDate
	// hdrForwardedAlias is X-Forwarded-For, -Host, -Proto or X-Request-Id
	// spelt with '_' for '-': CGI-style gateways (WSGI, PHP, Rack) read both
	// spellings as one variable (HTTP_X_FORWARDED_FOR), so a client's
	// X_Forwarded_For would stand beside the proxy's X-Forwarded-For there.
	// Never forwarded, as nginx forwards no name with '_'.
	hdrForwardedAlias
)

// headerID returns the id of a field name, ignoring case.
func headerID(name []byte) hdr {
	switch len(name) {
	case 2:
		if equalFold(name, "te") {
			return hdrTE
		}
	case 4:
		if equalFold(name, "host") {
			return hdrHost
		}
		if equalFold(name, "date") {
			return hdrDate
		}
	case 6:
		if equalFold(name, "expect") {
			return hdrExpect
		}
	case 7:
		if equalFold(name, "upgrade") {
			return hdrUpgrade
		}
		if equalFold(name, "trailer") {
			return hdrTrailer
		}
	case 10:
		if equalFold(name, "connection") {
			return hdrConnection
		}
		if equalFold(name, "keep-alive") {
			return hdrKeepAlive
		}
	case 12:
		if equalFold(name, "x-request-id") {
			return hdrXRequestID
		}
		if equalFoldDash(name, "x-request-id") {
			return hdrForwardedAlias
		}
	case 14:
		if equalFold(name, "content-length") {
			return hdrContentLength
		}
		if equalFold(name, "http2-settings") {
			return hdrHTTP2Settings
		}
	case 15:
		if equalFold(name, "x-forwarded-for") {
			return hdrXForwardedFor
		}
		if equalFoldDash(name, "x-forwarded-for") {
			return hdrForwardedAlias
		}
	case 16:
		if equalFold(name, "x-forwarded-host") {
			return hdrXForwardedHost
		}
		if equalFoldDash(name, "x-forwarded-host") {
			return hdrForwardedAlias
		}
		if equalFold(name, "proxy-connection") {
			return hdrProxyConnection
		}
	case 17:
		if equalFold(name, "transfer-encoding") {
			return hdrTransferEncoding
		}
		if equalFold(name, "x-forwarded-proto") {
			return hdrXForwardedProto
		}
		if equalFoldDash(name, "x-forwarded-proto") {
			return hdrForwardedAlias
		}
	case 18:
		if equalFold(name, "proxy-authenticate") {
			return hdrProxyAuthenticate
		}
	case 19:
		if equalFold(name, "proxy-authorization") {
			return hdrProxyAuthorization
		}
	}
	return hdrOther
}

// hopByHop reports whether a field belongs to one connection (RFC 9110
// §7.6.1) and so is never forwarded as received: the proxy writes its own
// framing, Connection and Upgrade for each hop.
func (h hdr) hopByHop() bool {
	switch h {
	case hdrContentLength, hdrTransferEncoding, hdrConnection, hdrUpgrade, hdrTE, hdrTrailer,
		hdrKeepAlive, hdrProxyConnection, hdrProxyAuthenticate, hdrProxyAuthorization, hdrHTTP2Settings:
		return true
	}
	return false
}

// protected reports whether a Connection header may not name the field to
// remove it: Host, the framing, and the headers the proxy writes for the
// instance to trust. A client that lists them would otherwise make the
// instance see a request without a Host, or without the proxy's
// X-Forwarded-For.
func (h hdr) protected() bool {
	switch h {
	case hdrHost, hdrContentLength, hdrTransferEncoding, hdrXForwardedFor, hdrXForwardedHost,
		hdrXForwardedProto, hdrXRequestID:
		return true
	}
	return false
}

// removedBy reports whether a Connection field among fields names field f
// as hop-by-hop, so that it is not forwarded.
func removedBy(head []byte, fields []field, f *field) bool {
	if f.id.protected() {
		return false
	}
	name := f.name.of(head)
	for i := range fields {
		if fields[i].id == hdrConnection && listHas(fields[i].value.of(head), name) {
			return true
		}
	}
	return false
}

// listHas reports whether the comma-separated list v holds name, ignoring
// case and spaces.
func listHas(v, name []byte) bool {
	for len(v) > 0 {
		var t []byte
		if t, v = nextToken(v); equalFoldBytes(t, name) {
			return true
		}
	}
	return false
}

// connTokens is what the Connection fields of a message say.
type connTokens struct {
	close     bool // "close"
	keepAlive bool // "keep-alive" (HTTP/1.0)
	upgrade   bool // "upgrade"
	other     bool // other names: those fields are hop-by-hop (removedBy)
}

// read adds the tokens of one Connection field value.
func (t *connTokens) read(v []byte) {
	for len(v) > 0 {
		var tok []byte
		tok, v = nextToken(v)
		switch {
		case equalFold(tok, "close"):
			t.close = true
		case equalFold(tok, "keep-alive"):
			t.keepAlive = true
		case equalFold(tok, "upgrade"):
			t.upgrade = true
		case len(tok) > 0:
			t.other = true
		}
	}
}
