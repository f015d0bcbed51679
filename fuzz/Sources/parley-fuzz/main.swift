// Every fuzz target (`FuzzTargets.all`); see Sources/FuzzDriver.
import FuzzDriver
import ParleyFuzzTargets

runFuzzer(FuzzTargets.all)
