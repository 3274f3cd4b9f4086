//! A valid component that implements some other world, not a mediagraph plugin.

wit_bindgen::generate!({ world: "other", path: "wit" });

struct Other;

impl exports::test::other::greeter::Guest for Other {
    fn greet() -> String {
        "hello".into()
    }
}

export!(Other);
