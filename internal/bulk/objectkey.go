package bulk

import (
	"strings"
	"unicode/utf8"
)

// Key limits: maxObjectKeyLen is S3's; maxObjectKeySegmentLen leaves room
// under the usual 255-byte file name limit for the filesystem store's
// temp-file suffix.
const (
	maxObjectKeyLen        = 1024
	maxObjectKeySegmentLen = 200
)

// TempKeyMarker is reserved in keys: the filesystem store names its
// in-progress uploads key + TempKeyMarker + random, so no key may contain it.
const TempKeyMarker = ".tmp-"

// CheckObjectKey returns an EINVALID error unless key is a valid ObjectStore
// key. It is the one key rule every ObjectStore adapter applies, so a key
// that works in memory works on disk and in S3.
//
// A valid key is a relative slash-separated path of non-empty segments
// ("job-id/Observation.0003.0001.ndjson"): it is valid UTF-8 of at most
// maxObjectKeyLen bytes, has no leading or trailing slash, no empty segment, no
// segment longer than maxObjectKeySegmentLen, no "." segment, does not contain
// "..", a backslash, a control character (including NUL) or TempKeyMarker.
func CheckObjectKey(key string) error {
	switch {
	case key == "":
		return Errorf(EINVALID, "Object key is empty.")
	case len(key) > maxObjectKeyLen:
		return Errorf(EINVALID, "Object key is longer than %d bytes.", maxObjectKeyLen)
	case !utf8.ValidString(key):
		return Errorf(EINVALID, "Object key %q is not valid UTF-8.", key)
	case strings.HasPrefix(key, "/"):
		return Errorf(EINVALID, "Object key %q is absolute.", key)
	case strings.Contains(key, ".."):
		return Errorf(EINVALID, "Object key %q contains \"..\".", key)
	case strings.Contains(key, `\`):
		return Errorf(EINVALID, "Object key %q contains a backslash.", key)
	case strings.Contains(key, TempKeyMarker):
		return Errorf(EINVALID, "Object key %q contains the reserved %q.", key, TempKeyMarker)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return Errorf(EINVALID, "Object key %q contains a control character.", key)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch {
		case seg == "":
			return Errorf(EINVALID, "Object key %q has an empty path segment.", key)
		case seg == ".":
			return Errorf(EINVALID, "Object key %q has a \".\" path segment.", key)
		case len(seg) > maxObjectKeySegmentLen:
			return Errorf(EINVALID, "Object key %q has a path segment longer than %d bytes.", key, maxObjectKeySegmentLen)
		}
	}
	return nil
}
