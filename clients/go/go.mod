// The Go stubs for segsvc (segmentation/v1), a small example caller and the benchmark's
// load client (cmd/segsvc-load, which marshals with github.com/golang/protobuf as gRPC's
// own codec does, since gRPC's health messages are APIv1 ones).
//
// The versions are the oldest this code is built and tested with: Debian 12's packaged
// gRPC and protobuf modules (golang-google-grpc-dev, golang-google-protobuf-dev,
// golang-github-golang-protobuf-1-5-dev), which the project's tests use offline in GOPATH
// mode (see tools/go_build.py). With network access, `go mod tidy && go build ./...`
// works as usual.
module github.com/segsvc/segsvc/clients/go

go 1.19

require (
	github.com/golang/protobuf v1.5.2
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
