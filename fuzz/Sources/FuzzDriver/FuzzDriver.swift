// The libFuzzer side of the fuzz executables: `LLVMFuzzerInitialize` picks one target by
// `PARLEY_FUZZ_TARGET` (or by the name the binary runs under: `parley-fuzz-stun` runs `stun`),
// `LLVMFuzzerTestOneInput` hands it each input.
//
// SwiftPM names a Swift executable's entry point `main`, so libFuzzer's own `main` is never
// linked: `runFuzzer` hands control to libFuzzer's driver instead (`LLVMFuzzerRunDriver`).
#if canImport(Glibc)
import Glibc
#endif

public typealias FuzzTarget = @Sendable (UnsafeRawBufferPointer) -> Void

nonisolated(unsafe) private var targets: [String: FuzzTarget] = [:]
nonisolated(unsafe) private var selected: FuzzTarget?

/// Runs libFuzzer over one of `all` (it parses the command line itself) and exits with its status.
public func runFuzzer(_ all: [String: FuzzTarget]) -> Never {
    targets = all
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(runDriver(&argc, &argv, fuzzerTestOneInput))
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let program = argv.pointee?.pointee.map { String(cString: $0) } ?? ""
    let fromName = program.split(separator: "/").last.map(String.init).flatMap { base in
        base.hasPrefix("parley-fuzz-") ? String(base.dropFirst("parley-fuzz-".count)) : nil
    }
    guard let name = getenv("PARLEY_FUZZ_TARGET").map({ String(cString: $0) }) ?? fromName, let target = targets[name] else {
        let message = "parley-fuzz: set PARLEY_FUZZ_TARGET to one of: \(targets.keys.sorted().joined(separator: " "))\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected?(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                       _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt
