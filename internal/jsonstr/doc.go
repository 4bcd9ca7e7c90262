// Package jsonstr appends Go strings as JSON strings, byte for byte as
// encoding/json writes them with HTML escaping off, without reflection or
// allocation. The bus writes its envelopes with it and the gateway its
// WebSocket frames.
//
// Append is a pure function, safe for concurrent use; this package imports
// only the standard library.
package jsonstr
