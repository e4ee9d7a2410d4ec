// Package config owns tributary's one configuration file: its shape (Config), its defaults
// (Default), and the path from bytes to a validated value (Load): ${VAR} interpolation from the
// environment, strict decoding that rejects unknown keys, --set overrides, and validation that
// reports every problem at once, each message starting with the key's path.
//
// It also owns the small value types the file is written in: Size ("64MiB"), Duration ("10s"),
// TableName ("schema.table" with Postgres quoting) and DSN, the Postgres connection string whose
// password never reaches a log line or an error.
//
// It does not connect to anything and does not check that the named project, bucket, dataset or
// tables exist; that is the job of the packages that use them. The keys are documented one by
// one in docs/config.md.
package config
