// Package mock holds function-field fakes of the small bulk ports, in the
// style of benbjohnson/wtf's mock package: each fake has one XxxFn field
// per method, and each method calls its field. A test sets the fields of
// the calls it expects; a call whose field is nil panics naming the
// method, so an unexpected call fails the test where it happens instead
// of reaching a nil embedded interface.
//
// The fakes cover the capability interfaces (bulk.JobReader,
// bulk.ResourceReader, ...), not their compositions: a component takes
// the parts it uses, and its test sets only those.
package mock

import "strings"

// notSet panics for a call to method ("JobReader.GetJob") whose function
// field (GetJobFn) is nil.
func notSet(method string) {
	field := method[strings.LastIndexByte(method, '.')+1:] + "Fn"
	panic("mock." + method + " called, but " + field + " is not set")
}
