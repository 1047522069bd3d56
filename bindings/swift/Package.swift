// swift-tools-version:5.7
// libwhisper for Swift: the C library as the module CWhisper (a system
// library target: the package builds nothing, it finds an installed
// libwhisper through pkg-config). See README.md, also for iOS, where an
// XCFramework replaces pkg-config.
//
// Not compiled on the machine this repository is tested on (it has no
// Swift toolchain); tests/bindings/swift_module_check.sh checks what
// Swift's importer reads: the module map, the headers' nullability and
// the API notes, with clang.
import PackageDescription

let package = Package(
  name: "Whisper",
  products: [
    .library(name: "CWhisper", targets: ["CWhisper"]),
  ],
  targets: [
    .systemLibrary(
      name: "CWhisper",
      path: "Sources/CWhisper",
      pkgConfig: "whisper",
      providers: [
        .apt(["libwhisper-dev"]),
        .brew(["libwhisper"]),
      ]
    ),
  ]
)
