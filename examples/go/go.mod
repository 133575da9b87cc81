module github.com/ordq/ordq/examples/go

go 1.24

require github.com/ordq/ordq/bindings/go v0.0.0

replace github.com/ordq/ordq/bindings/go => ../../bindings/go
