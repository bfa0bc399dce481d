// main() of the test binaries. ctest runs them one group at a time (a gtest suite, or one test of a
// parameterised suite over all its parameters: cmake/TesseraTestGroups.cmake), since one process per
// test case cost more than the tests themselves under AddressSanitizer. So that ctest's "Skipped"
// stays exact, a group (TESSERA_TEST_GROUP set) is all skipped or all run: a group that skipped
// every test prints TESSERA_GROUP_SKIPPED (ctest's skip expression), and one that mixes skipped
// tests with tests that ran fails, naming them: such tests belong in a suite of their own.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  if (std::getenv("TESSERA_TEST_GROUP") == nullptr) return rc;
  const ::testing::UnitTest& u = *::testing::UnitTest::GetInstance();
  const int ran = u.test_to_run_count(), skipped = u.skipped_test_count();
  if (ran == 0) {
    std::fprintf(stderr, "error: this test group matched no test (is the filter stale? rebuild to rediscover)\n");
    return 1;
  }
  if (skipped == ran && u.failed_test_count() == 0) {
    std::printf("TESSERA_GROUP_SKIPPED: all %d tests of this group skipped (reasons above)\n", ran);
    return rc;
  }
  if (skipped > 0) {
    std::string names;
    for (int i = 0; i < u.total_test_suite_count(); ++i) {
      const ::testing::TestSuite& s = *u.GetTestSuite(i);
      for (int j = 0; j < s.total_test_count(); ++j)
        if (s.GetTestInfo(j)->result()->Skipped()) names += std::string(" ") + s.name() + "." + s.GetTestInfo(j)->name();
    }
    std::fprintf(stderr, "error: %d of the %d tests of this group skipped while the others ran:%s; move them to a suite of their own so that ctest reports the skip\n",
                 skipped, ran, names.c_str());
    return 1;
  }
  return rc;
}
