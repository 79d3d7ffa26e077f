module github.com/bowline-mesh/bowline

go 1.26.8

require (
	github.com/spf13/cobra v1.10.2
	google.golang.org/protobuf v1.36.12
	istio.io/api v1.31.1
)

require (
	github.com/golang/protobuf v1.5.4 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.10 // indirect
	google.golang.org/genproto/googleapis/api v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)
