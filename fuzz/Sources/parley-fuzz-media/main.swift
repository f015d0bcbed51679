// The media plane's fuzz targets (`MediaFuzzTargets.all`), in a binary without SwiftNIO or
// Hummingbird: libFuzzer runs them ten times as fast. See Sources/FuzzDriver.
import FuzzDriver
import ParleyMediaFuzzTargets

runFuzzer(MediaFuzzTargets.all)
