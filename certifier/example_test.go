package certifier_test

import (
	"fmt"
	"log"

	"certmix/certifier"
)

// Summarize turns per-image certification results into the paper's
// numbers: clean accuracy, certified accuracy at eps, and certified
// accuracy at every reported radius (ReportRadii of the norm).
func ExampleSummarize() {
	eps := 36.0 / 255
	results := []certifier.Result{
		{Label: 0, Prediction: 0, Radius: 0.5},  // correct, certified beyond 2 eps
		{Label: 1, Prediction: 1, Radius: 0.2},  // correct, certified at eps only
		{Label: 2, Prediction: 2, Radius: 0.05}, // correct, not certified at eps
		{Label: 3, Prediction: 1, Radius: 0.9},  // wrong: never counts as certified
	}
	rep, err := certifier.Summarize(results, certifier.ReportOptions{Eps: eps, Norm: "l2"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("clean %.2f, certified at %s %.2f\n", rep.CleanAccuracy, certifier.RadiusLabel(eps), rep.CertifiedAccuracy)
	for _, a := range rep.AtRadii {
		fmt.Printf("  at %-7s %.2f\n", certifier.RadiusLabel(a.Radius), a.Accuracy)
	}
	// Output:
	// clean 0.75, certified at 36/255 0.50
	//   at 18/255  0.50
	//   at 36/255  0.50
	//   at 72/255  0.25
	//   at 108/255 0.25
}
