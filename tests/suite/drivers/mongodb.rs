//! MongoDB: shell-style queries, types that keep their meaning, limits, read-only.

use mako_databases::ConnectorError;
use mako_tests::databases::TestDatabase;
use serde_json::{Value, json};

fn rows(output: &mako_databases::ExecuteOutput) -> Value {
    serde_json::to_value(&output.result_sets[0].rows).expect("rows")
}

async fn seed(db: &TestDatabase) {
    let output = db
        .run(
            "db.orders.insertMany([ \
               { _id: ObjectId('64f1a2b3c4d5e6f708091a2b'), customer: 'Zoë', total: NumberDecimal('1234.50'), \
                 units: NumberLong('9007199254740993'), placed: ISODate('2024-02-29T23:59:59.123Z'), \
                 tags: ['new', null], address: { city: 'Oslo', zip: NumberInt(150) }, paid: true, raw: BinData(0, 'AP8=') }, \
               { _id: ObjectId('64f1a2b3c4d5e6f708091a2c'), customer: 'Ana', total: NumberDecimal('10'), units: NumberLong(2), \
                 placed: ISODate('2024-03-01T00:00:00Z'), coupon: 'SPRING', paid: false } \
             ])",
        )
        .await;
    assert_eq!(output.result_sets[0].affected_rows, Some(2));
}

#[tokio::test]
async fn mongodb_types_keep_their_meaning() {
    let Some(db) = TestDatabase::mongodb().await else {
        return;
    };
    seed(&db).await;

    let output = db.run("db.orders.find({}).sort({ _id: 1 })").await;

    let names: Vec<&str> = output.result_sets[0].columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "_id", "customer", "total", "units", "placed", "tags", "address", "paid", "raw", "coupon"
        ]
    );
    let first = &rows(&output)[0];
    assert_eq!(first[0], json!("64f1a2b3c4d5e6f708091a2b"));
    assert_eq!(first[2], json!("1234.50"), "Decimal128 keeps its digits");
    assert_eq!(first[3], json!("9007199254740993"), "Int64 keeps every digit");
    assert_eq!(first[4], json!("2024-02-29T23:59:59.123Z"));
    assert_eq!(first[5], json!(["new", null]));
    assert_eq!(first[6], json!({ "city": "Oslo", "zip": 150 }));
    assert_eq!(first[8], json!("AP8="));
    assert_eq!(first[9], Value::Null, "a missing key is NULL");
    let types: Vec<Value> = output.result_sets[0]
        .columns
        .iter()
        .map(|c| serde_json::to_value(c.portable).expect("type"))
        .collect();
    assert_eq!(
        &types[..5],
        &[
            json!("objectid"),
            json!("string"),
            json!("decimal"),
            json!("int64"),
            json!("timestamptz")
        ]
    );
    db.drop_database().await;
}

#[tokio::test]
async fn mongodb_operations_run() {
    let Some(db) = TestDatabase::mongodb().await else {
        return;
    };
    seed(&db).await;

    let filtered = db
        .run("db.orders.find({ total: { $gt: NumberDecimal('100') } }, { customer: 1, _id: 0 })")
        .await;
    assert_eq!(rows(&filtered), json!([["Zoë"]]));
    let aggregated = db
        .run("db.orders.aggregate([{ $group: { _id: '$paid', n: { $sum: 1 } } }, { $sort: { _id: 1 } }])")
        .await;
    assert_eq!(rows(&aggregated), json!([[false, 1], [true, 1]]));
    let counted = db.run("db.orders.countDocuments({ paid: true })").await;
    assert_eq!(rows(&counted), json!([["1"]]));
    let distinct = db.run("db.orders.distinct('customer')").await;
    assert_eq!(rows(&distinct).as_array().map(Vec::len), Some(2));
    let updated = db
        .run("db.orders.updateOne({ customer: 'Ana' }, { $set: { paid: true } })")
        .await;
    assert_eq!(updated.result_sets[0].affected_rows, Some(1));
    let structured = db.run(r#"{"collection": "orders", "operation": "find", "filter": {"paid": true}, "projection": {"_id": 0, "customer": 1}, "sort": {"customer": 1}}"#).await;
    assert_eq!(rows(&structured), json!([["Ana"], ["Zoë"]]));
    db.drop_database().await;
}

#[tokio::test]
async fn mongodb_caps_and_read_only() {
    let Some(db) = TestDatabase::mongodb().await else {
        return;
    };
    let documents: Vec<String> = (0..50).map(|i| format!("{{ n: {i} }}")).collect();
    db.run(&format!("db.many.insertMany([{}])", documents.join(", "))).await;

    let mut request = db.request("db.many.find({})");
    request.max_rows = 10;
    let output = db.database.execute(request).await.expect("capped");
    assert_eq!(output.result_sets[0].row_count, 10);
    assert!(output.result_sets[0].truncated);

    for query in [
        "db.many.deleteMany({})",
        "db.many.insertOne({ x: 1 })",
        "db.many.aggregate([{ $out: 'copy' }])",
    ] {
        let mut request = db.request(query);
        request.read_only = true;
        let result = db.database.execute(request).await;
        assert!(
            matches!(result, Err(ConnectorError::ReadOnly { .. })),
            "{query}: {result:?}"
        );
    }
    assert_eq!(rows(&db.run("db.many.countDocuments({})").await), json!([["50"]]));
    db.drop_database().await;
}

#[tokio::test]
async fn mongodb_refuses_javascript_and_bad_syntax() {
    let Some(db) = TestDatabase::mongodb().await else {
        return;
    };
    for query in [
        "db.orders.find({ $where: function() { return true } })",
        "db.orders.find({ a: Math.random() })",
        "db.orders.find({",
    ] {
        let result = db.database.execute(db.request(query)).await;
        assert!(
            matches!(result, Err(ConnectorError::InvalidQuery { .. })),
            "{query}: {result:?}"
        );
    }
    db.drop_database().await;
}

#[tokio::test]
async fn mongodb_test_and_schema() {
    let Some(db) = TestDatabase::mongodb().await else {
        return;
    };
    seed(&db).await;
    let report = db.database.test().await.expect("test");
    assert!(
        report.server_version.starts_with("MongoDB "),
        "{}",
        report.server_version
    );

    let databases = db.database.databases().await.expect("databases");
    assert!(databases.contains(&db.name), "{databases:?}");
    let tables = db.database.tables(None, None).await.expect("collections");
    assert_eq!(
        tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        vec!["orders"]
    );
    let columns = db.database.columns(None, None, "orders").await.expect("fields");
    let coupon = columns.iter().find(|c| c.name == "coupon").expect("coupon field");
    assert_eq!(coupon.native_type, "string");
    let total = columns.iter().find(|c| c.name == "total").expect("total field");
    assert_eq!(total.portable, mako_databases::PortableType::Decimal);
    db.drop_database().await;
}

#[tokio::test]
async fn mongodb_unreachable_is_plain() {
    // A closed port on this machine: nothing listens on port 1.
    let config = mako_databases::settings::ConnectionConfig::Mongodb(mako_databases::settings::MongoConfig {
        uri: mako_core::ports::SecretString::new("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1000"),
        hosts: vec![("127.0.0.1".into(), 1)],
        srv: false,
        database: Some("shop".into()),
        tls: mako_databases::settings::TlsMode::Disable,
    });
    let database = mako_databases::open(config, &mako_tests::databases::local_policy())
        .await
        .expect("open");
    match database.test().await {
        Err(ConnectorError::Unreachable { reason, .. }) => {
            assert!(!reason.contains("Topology"), "{reason}");
            assert!(reason.contains("refused"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}
