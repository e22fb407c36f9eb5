package main

import (
	"flag"

	"certmix/shards"
)

// s3Flags binds the S3 settings, each defaulting to its environment variable,
// and returns a function that gives the settings once the flags are parsed.
// The secret's default is never printed by --help.
func s3Flags(fs *flag.FlagSet) func() shards.S3Config {
	cfg := shards.S3ConfigFromEnv()
	envSecret := cfg.SecretKey
	fs.StringVar(&cfg.Endpoint, "s3-endpoint", cfg.Endpoint, "S3 endpoint URL, e.g. http://127.0.0.1:7070 (env AWS_ENDPOINT_URL)")
	fs.StringVar(&cfg.Region, "s3-region", cfg.Region, "S3 region (env AWS_REGION)")
	fs.StringVar(&cfg.AccessKey, "s3-access-key", cfg.AccessKey, "S3 access key (env AWS_ACCESS_KEY_ID)")
	fs.StringVar(&cfg.SecretKey, "s3-secret-key", "", "S3 secret key (default env AWS_SECRET_ACCESS_KEY, which keeps it out of ps)")
	fs.IntVar(&cfg.Retries, "s3-retries", cfg.Retries, "retries of a failed S3 request, with exponential backoff")
	return func() shards.S3Config {
		if cfg.SecretKey == "" {
			cfg.SecretKey = envSecret
		}
		return cfg
	}
}
