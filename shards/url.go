package shards

import (
	"context"
	"fmt"
	"strings"
)

// storeURL is a parsed store URL: a local directory (dir) or an S3 bucket and
// prefix.
type storeURL struct {
	dir            string
	bucket, prefix string
}

// storeSchemes names the URL forms OpenStore accepts, for error messages.
const storeSchemes = "a local path, file://path or s3://bucket[/prefix]"

// storeParseURL parses a store URL; see OpenStore.
func storeParseURL(u string) (storeURL, error) {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		if len(u) > 3 && strings.EqualFold(u[:3], "s3:") {
			return storeURL{}, fmt.Errorf("store URL %q: want s3://bucket[/prefix]", u)
		}
		if u == "" {
			return storeURL{}, fmt.Errorf("empty store URL: want %s", storeSchemes)
		}
		return storeURL{dir: u}, nil
	}
	switch strings.ToLower(scheme) {
	case "file":
		if rest == "" {
			return storeURL{}, fmt.Errorf("store URL %q: empty path", u)
		}
		return storeURL{dir: rest}, nil
	case "s3":
		bucket, prefix, _ := strings.Cut(rest, "/")
		if strings.ContainsAny(bucket, "@:") {
			// Do not echo the URL: it may hold a secret.
			return storeURL{}, fmt.Errorf("store URL s3://...: credentials and ports are not part of an s3:// URL; " +
				"set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
		if bucket == "" {
			return storeURL{}, fmt.Errorf("store URL %q: missing bucket: want s3://bucket[/prefix]", u)
		}
		return storeURL{bucket: bucket, prefix: strings.Trim(prefix, "/")}, nil
	}
	return storeURL{}, fmt.Errorf("store URL %q: unsupported scheme %q: want %s", u, scheme, storeSchemes)
}

// OpenStore opens the store that url names: a plain path or file://path is a
// local directory (NewLocal), s3://bucket/prefix is an S3 prefix reached
// with cfg (NewS3; the prefix may be empty and loses leading and trailing
// slashes). Other schemes are refused with the list of supported ones.
func OpenStore(ctx context.Context, url string, cfg S3Config) (Store, error) {
	u, err := storeParseURL(url)
	if err != nil {
		return nil, err
	}
	if u.bucket != "" {
		return NewS3(ctx, cfg, u.bucket, u.prefix)
	}
	return NewLocal(u.dir)
}
