"""FOCUS ServiceCategory for the service names the billing APIs return (they do not send one).

Exact names first, then keywords; anything unknown is `Other` (the default pool rules then split it
flat, and the tag audit still sees it).
"""

EXACT = {
    # AWS (Cost Explorer SERVICE dimension, CUR product names)
    "Amazon Elastic Compute Cloud - Compute": "Compute",
    "Amazon Elastic Compute Cloud": "Compute",
    "EC2 - Other": "Compute",
    "AWS Lambda": "Compute",
    "Amazon Elastic Container Service": "Compute",
    "Amazon Elastic Kubernetes Service": "Compute",
    "AWS Fargate": "Compute",
    "Amazon Simple Storage Service": "Storage",
    "Amazon Elastic File System": "Storage",
    "Amazon Relational Database Service": "Databases",
    "Amazon DynamoDB": "Databases",
    "Amazon ElastiCache": "Databases",
    "Amazon Aurora": "Databases",
    "Amazon Virtual Private Cloud": "Networking",
    "Elastic Load Balancing": "Networking",
    "Amazon CloudFront": "Networking",
    "AWS Data Transfer": "Networking",
    "Amazon Route 53": "Networking",
    "AmazonCloudWatch": "Management and Governance",
    "Amazon CloudWatch": "Management and Governance",
    "AWS CloudTrail": "Management and Governance",
    "Amazon Simple Queue Service": "Integration",
    "Amazon Simple Notification Service": "Integration",
    "AWS Key Management Service": "Security",
    "Tax": "Other",
    # Azure (ServiceName)
    "Virtual Machines": "Compute",
    "Azure App Service": "Compute",
    "Functions": "Compute",
    "Azure Kubernetes Service": "Compute",
    "Storage": "Storage",
    "Azure Database for PostgreSQL": "Databases",
    "Azure Database for MySQL": "Databases",
    "SQL Database": "Databases",
    "Azure Cosmos DB": "Databases",
    "Redis Cache": "Databases",
    "Virtual Network": "Networking",
    "Load Balancer": "Networking",
    "Bandwidth": "Networking",
    "Application Gateway": "Networking",
    "Azure Front Door Service": "Networking",
    "Azure Monitor": "Management and Governance",
    "Log Analytics": "Management and Governance",
    "Key Vault": "Security",
    # GCP (service.description)
    "Compute Engine": "Compute",
    "Cloud Run": "Compute",
    "Cloud Functions": "Compute",
    "Kubernetes Engine": "Compute",
    "Cloud Storage": "Storage",
    "Cloud SQL": "Databases",
    "Cloud Spanner": "Databases",
    "Cloud Bigtable": "Databases",
    "Firestore": "Databases",
    "Memorystore for Redis": "Databases",
    "BigQuery": "Analytics",
    "Networking": "Networking",
    "Cloud Load Balancing": "Networking",
    "Cloud CDN": "Networking",
    "Cloud Logging": "Management and Governance",
    "Cloud Monitoring": "Management and Governance",
    "Vertex AI": "AI and Machine Learning",
    "Cloud Pub/Sub": "Integration",
}

KEYWORDS = [
    ("database", "Databases"), ("sql", "Databases"), ("cache", "Databases"), ("dynamo", "Databases"),
    ("storage", "Storage"), ("s3", "Storage"), ("disk", "Storage"), ("backup", "Storage"),
    ("network", "Networking"), ("load balanc", "Networking"), ("bandwidth", "Networking"),
    ("data transfer", "Networking"), ("cdn", "Networking"), ("gateway", "Networking"), ("dns", "Networking"),
    ("compute", "Compute"), ("virtual machine", "Compute"), ("lambda", "Compute"), ("function", "Compute"),
    ("kubernetes", "Compute"), ("container", "Compute"),
    ("monitor", "Management and Governance"), ("logging", "Management and Governance"),
    ("cloudwatch", "Management and Governance"),
    ("queue", "Integration"), ("pub/sub", "Integration"), ("notification", "Integration"),
    ("machine learning", "AI and Machine Learning"), ("ai ", "AI and Machine Learning"),
    ("security", "Security"), ("key", "Security"), ("identity", "Identity"),
    ("analytics", "Analytics"), ("bigquery", "Analytics"),
]  # fmt: skip


def service_category(name: str | None) -> str:
    if not name:
        return "Other"
    if name in EXACT:
        return EXACT[name]
    lowered = name.lower()
    for keyword, category in KEYWORDS:
        if keyword in lowered:
            return category
    return "Other"
