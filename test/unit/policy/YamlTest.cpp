//===- YamlTest.cpp - The YAML subset of policy files ---------------------===//
#include "compiler/policy/Yaml.h"

#include <gtest/gtest.h>

using kvopt::policy::parseYaml;
using kvopt::policy::YamlNode;
using Kind = kvopt::policy::YamlNode::Kind;

namespace {

YamlNode parsed(std::string_view text) {
  kvrt::StatusOr<YamlNode> node = parseYaml(text, "p.yaml");
  EXPECT_TRUE(node) << node.status().message();
  return node ? *node : YamlNode();
}

std::string error(std::string_view text) {
  kvrt::StatusOr<YamlNode> node = parseYaml(text, "p.yaml");
  EXPECT_FALSE(node) << text;
  return node ? "" : node.status().message();
}

TEST(Yaml, BlockMappingsSequencesAndScalars) {
  YamlNode root = parsed("# a policy\n"
                         "quantize:   # the section\n"
                         "  encoding: polar\n"
                         "  bits: 3\n"
                         "\n"
                         "  overrides:\n"
                         "    - layers: [0, -1]\n"
                         "      encoding: 'bf16'\n"
                         "    - layers:\n"
                         "      - 4-11\n"
                         "      side: \"va\\\"l\\\\ue\"\n"
                         "    -\n"
                         "      encoding: int\n"
                         "    - - nested\n"
                         "    - []\n");
  ASSERT_EQ(root.kind, Kind::Mapping);
  ASSERT_EQ(root.entries.size(), 1u);
  const YamlNode &quantize = root.entries[0].value;
  ASSERT_EQ(quantize.kind, Kind::Mapping);
  ASSERT_EQ(quantize.entries.size(), 3u);
  EXPECT_EQ(quantize.entries[0].key, "encoding");
  EXPECT_EQ(quantize.entries[0].value.text, "polar");
  EXPECT_FALSE(quantize.entries[0].value.quoted);
  EXPECT_EQ(quantize.entries[1].value.text, "3");
  EXPECT_EQ(quantize.entries[1].line, 4u);
  EXPECT_EQ(quantize.entries[1].column, 3u);
  EXPECT_EQ(quantize.entries[1].value.column, 9u);

  const YamlNode &overrides = quantize.entries[2].value;
  ASSERT_EQ(overrides.kind, Kind::Sequence);
  ASSERT_EQ(overrides.items.size(), 5u);
  const YamlNode &first = overrides.items[0];
  ASSERT_EQ(first.kind, Kind::Mapping);
  EXPECT_EQ(first.column, 7u);
  const YamlNode &layers = first.entries[0].value;
  ASSERT_EQ(layers.kind, Kind::Sequence);
  ASSERT_EQ(layers.items.size(), 2u);
  EXPECT_EQ(layers.items[1].text, "-1");
  EXPECT_EQ(layers.items[1].column, 19u);
  EXPECT_EQ(first.entries[1].value.text, "bf16");
  EXPECT_TRUE(first.entries[1].value.quoted);

  // A sequence at its key's indentation.
  const YamlNode &second = overrides.items[1];
  ASSERT_EQ(second.entries.size(), 2u);
  ASSERT_EQ(second.entries[0].value.kind, Kind::Sequence);
  EXPECT_EQ(second.entries[0].value.items[0].text, "4-11");
  EXPECT_EQ(second.entries[1].value.text, "va\"l\\ue");

  EXPECT_EQ(overrides.items[2].entries[0].value.text, "int");
  ASSERT_EQ(overrides.items[3].kind, Kind::Sequence);
  EXPECT_EQ(overrides.items[3].items[0].text, "nested");
  EXPECT_EQ(overrides.items[4].kind, Kind::Sequence);
  EXPECT_TRUE(overrides.items[4].items.empty());
}

TEST(Yaml, NullsMarkersLineEndsAndQuotes) {
  EXPECT_EQ(parsed("").kind, Kind::Null);
  EXPECT_EQ(parsed("# only a comment\n\n   \n").kind, Kind::Null);
  YamlNode root = parsed("\xEF\xBB\xBF---\r\na:\r\nb: 'it''s # not a "
                         "comment'\r\nc: x#y\r\n");
  ASSERT_EQ(root.entries.size(), 3u);
  EXPECT_EQ(root.entries[0].value.kind, Kind::Null);
  EXPECT_EQ(root.entries[1].line, 3u);
  EXPECT_EQ(root.entries[1].value.text, "it's # not a comment");
  EXPECT_EQ(root.entries[2].value.text, "x#y");
  EXPECT_EQ(parsed("'quoted key': 1\n").entries[0].key, "quoted key");
  EXPECT_EQ(parsed("a: b:c\n").entries[0].value.text, "b:c");
}

TEST(Yaml, RefusesDuplicatesTabsAndBadBytes) {
  EXPECT_EQ(error("a: 1\nb: 2\na: 3\n"),
            "p.yaml:3:1: duplicate key 'a' (first on line 1)");
  EXPECT_EQ(error("a:\n\tb: 1\n"),
            "p.yaml:2:1: a tab; indent and separate with spaces");
  EXPECT_EQ(error("a: 1 # \tcomment\n"),
            "p.yaml:1:8: a tab; indent and separate with spaces");
  EXPECT_EQ(error("a: \x01\n"), "p.yaml:1:4: control character 0x01");
  EXPECT_EQ(error("a: 1\rb: 2\n"), "p.yaml:1:5: control character 0x0d");
  EXPECT_EQ(error(std::string_view("a: \0\n", 5)),
            "p.yaml:1:4: control character 0x00");
  EXPECT_EQ(error("a: \xC3\x28\n"), "p.yaml:1:1: the line is not valid UTF-8");
}

TEST(Yaml, RefusesWhatItDoesNotSupport) {
  EXPECT_EQ(error("a: &x 1\n"), "p.yaml:1:4: anchors (&) are not supported");
  EXPECT_EQ(error("a: *x\n"), "p.yaml:1:4: aliases (*) are not supported");
  EXPECT_EQ(error("a: !!int 1\n"), "p.yaml:1:4: tags (!) are not supported");
  EXPECT_EQ(error("a: {b: 1}\n"), "p.yaml:1:4: flow mappings ({...}) are not "
                                  "supported; write a block mapping");
  EXPECT_EQ(error("a: |\n  text\n"),
            "p.yaml:1:4: block scalars (| and >) are not supported; write the "
            "value on one line");
  EXPECT_EQ(error("? a\n"), "p.yaml:1:1: complex keys (?) are not supported");
  EXPECT_EQ(error("%YAML 1.2\n---\na: 1\n"),
            "p.yaml:1:1: directives (%) are not supported");
  EXPECT_EQ(error("a: 1\n---\nb: 2\n"),
            "p.yaml:2:1: a second document; a policy is one YAML document");
  EXPECT_EQ(error("a: 1\n...\n"),
            "p.yaml:2:1: document end markers (...) are not supported");
  EXPECT_EQ(error("a: [0, [1]]\n"),
            "p.yaml:1:8: nested flow sequences are not supported");
  EXPECT_EQ(error("a: [0, 1\n"),
            "p.yaml:1:4: a flow sequence must close on its line");
  EXPECT_EQ(error("a: [0,\n  1]\n"),
            "p.yaml:1:4: a flow sequence must close on its line");
  EXPECT_EQ(error("a: [0, ]\n"),
            "p.yaml:1:8: a trailing comma in a flow sequence");
  EXPECT_EQ(error("a: [0,, 1]\n"),
            "p.yaml:1:7: an empty item in a flow sequence");
  EXPECT_EQ(error("a: [b: 1]\n"),
            "p.yaml:1:6: flow mappings are not supported");
  EXPECT_EQ(error("a: 'open\n"),
            "p.yaml:1:4: a quoted scalar must end on its line");
  EXPECT_EQ(error("a: \"\\n\"\n"),
            "p.yaml:1:5: an escape other than \\\" and \\\\; write the "
            "character itself");
  EXPECT_EQ(error("a: b: c\n"),
            "p.yaml:1:5: a mapping cannot start on its key's line; write it "
            "on the next lines, indented");
  EXPECT_EQ(error("a: - b\n"),
            "p.yaml:1:4: a block sequence cannot start on its key's line; "
            "start it on the next line");
}

TEST(Yaml, RefusesBadIndentation) {
  EXPECT_EQ(error("a: 1\n  b: 2\n"),
            "p.yaml:2:3: unexpected indentation; a value cannot continue on "
            "the next line");
  EXPECT_EQ(error("a:\n    b: 1\n  c: 2\n"),
            "p.yaml:3:3: unexpected indentation; a value cannot continue on "
            "the next line");
  EXPECT_EQ(error("- a: 1\n   b: 2\n"),
            "p.yaml:2:4: unexpected indentation; a value cannot continue on "
            "the next line");
  EXPECT_EQ(error("a: 1\n- b\n"),
            "p.yaml:2:1: expected 'key: value', found a sequence item");
  EXPECT_EQ(error("a: 1\nplain\n"), "p.yaml:2:1: expected 'key: value'");
  EXPECT_EQ(error("- a\nb: 1\n"), "p.yaml:2:1: unexpected text after the "
                                  "document; check the indentation");
  EXPECT_EQ(error(": 1\n"), "p.yaml:1:1: an empty key");
}

TEST(Yaml, BoundsDepthSizeAndScalars) {
  // 16 nested collections parse, 17 do not.
  std::string deep;
  for (int depth = 0; depth < 16; ++depth)
    deep += std::string(depth, ' ') + "k:\n";
  EXPECT_EQ(parsed(deep + std::string(16, ' ') + "leaf\n").kind, Kind::Mapping);
  EXPECT_EQ(error(deep + std::string(16, ' ') + "k: 1\n"),
            "p.yaml:17:17: collections nested deeper than 16 levels");
  std::string dashes;
  for (int depth = 0; depth < 17; ++depth)
    dashes += "- ";
  EXPECT_EQ(error(dashes + "x\n"),
            "p.yaml:1:33: collections nested deeper than 16 levels");
  // Deep input fails at the bound, without recursing once per level.
  std::string manyDashes;
  for (int depth = 0; depth < 50000; ++depth)
    manyDashes += "- ";
  EXPECT_EQ(error(manyDashes + "x\n"),
            "p.yaml:1:33: collections nested deeper than 16 levels");
  EXPECT_EQ(error("a: " + std::string(100000, '[')),
            "p.yaml:1:5: nested flow sequences are not supported");

  EXPECT_EQ(parsed("a: " + std::string(1024, 'x')).entries[0].value.text.size(),
            1024u);
  EXPECT_EQ(error("a: " + std::string(1025, 'x')),
            "p.yaml:1:4: a scalar longer than 1024 bytes");
  EXPECT_EQ(error("a: '" + std::string(5000, 'x') + "'"),
            "p.yaml:1:4: a scalar longer than 1024 bytes");
  EXPECT_EQ(error(std::string(2000, 'k') + ": 1"),
            "p.yaml:1:1: a scalar longer than 1024 bytes");
  EXPECT_EQ(error(std::string(300 * 1024, '#')),
            "p.yaml: 307200 bytes; a policy file holds at most 262144");
}

} // namespace
