module github.com/ordq/ordq/bindings/go

go 1.24
