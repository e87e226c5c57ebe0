package membership

import (
	"encoding/binary"
	"unicode/utf8"
)

// metaVersion is the version of the node metadata encoding that this
// release writes.
//
// Version 1 layout, after the version byte:
//
//	uvarint length, site id bytes
//	uvarint length, PeerAddr bytes
//	uvarint length, MQTTAddr bytes
//	uvarint BootIncarnation
//
// Later versions keep this layout as a prefix and only append fields, so a
// node decodes the fields it can read from a newer node's metadata and skips
// the rest. So one release's nodes keep working beside the next release's
// during a rolling upgrade. Version 1 metadata with trailing bytes is invalid.
const metaVersion = 1

// maxMetaString bounds each string field. memberlist caps the whole
// metadata at memberlist.MetaMaxSize (512) bytes, which Config.Validate
// checks for the encoded result.
const maxMetaString = 255

// encodeMeta encodes a node's metadata. It does not check sizes:
// Config.Validate does.
func encodeMeta(siteID string, m Meta) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen16+len(siteID)+len(m.PeerAddr)+len(m.MQTTAddr)+binary.MaxVarintLen64)
	b = append(b, metaVersion)
	b = appendString(b, siteID)
	b = appendString(b, m.PeerAddr)
	b = appendString(b, m.MQTTAddr)
	b = binary.AppendUvarint(b, m.BootIncarnation)
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeMeta decodes metadata that another node published. It checks every
// length against the remaining bytes before slicing, because the bytes come
// from the network. Errors wrap ErrInvalidMeta.
func decodeMeta(b []byte) (siteID string, m Meta, err error) {
	if len(b) == 0 {
		return "", Meta{}, metaErrorf("empty")
	}
	version := b[0]
	if version == 0 {
		return "", Meta{}, metaErrorf("version 0")
	}
	r := metaReader{buf: b[1:]}
	siteID = r.string("site id")
	m.PeerAddr = r.string("peer address")
	m.MQTTAddr = r.string("MQTT address")
	m.BootIncarnation = r.uvarint("boot incarnation")
	if r.err != nil {
		return "", Meta{}, r.err
	}
	if version == metaVersion && len(r.buf) != 0 {
		return "", Meta{}, metaErrorf("%d trailing bytes after version %d fields", len(r.buf), metaVersion)
	}
	if err := validateSiteID(siteID); err != nil {
		return "", Meta{}, metaErrorf("site id: %v", err)
	}
	return siteID, m, nil
}

// metaReader reads fields in order and keeps the first error, so the caller
// checks once at the end.
type metaReader struct {
	buf []byte
	err error
}

func (r *metaReader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.err = metaErrorf("%s: truncated or overlong varint", field)
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *metaReader) string(field string) string {
	n := r.uvarint(field + " length")
	if r.err != nil {
		return ""
	}
	if n > maxMetaString {
		r.err = metaErrorf("%s: length %d exceeds %d", field, n, maxMetaString)
		return ""
	}
	if n > uint64(len(r.buf)) {
		r.err = metaErrorf("%s: length %d exceeds the %d bytes left", field, n, len(r.buf))
		return ""
	}
	s := r.buf[:n]
	if !utf8.Valid(s) {
		r.err = metaErrorf("%s: not valid UTF-8", field)
		return ""
	}
	r.buf = r.buf[n:]
	return string(s)
}
